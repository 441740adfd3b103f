"""Blinded rating sheets: the same samples for every method, shuffled, with attention checks.

Every format shows one item at a time as (image, label) and asks for a 1-5 rating of how well
the image shows the label (the paper's relevance question). Item ids are random, so nothing in a
sheet names a method or a run; `key.csv` maps them back. Attention checks are reference frames
shown with their true label (should be rated high) and with another class's label (low).

Run folders and datasets may come from strangers and the sheets go to other strangers, so every
image is checked before anything is written (see `_checked_image`), and every CSV cell that a
spreadsheet would run as a formula is neutralised (see `neutralise`).

The images are written to `images/<item id>.png`, so their names are as blind as the sheets. The
HTML form and, by default, the Label Studio tasks embed them (as `data:` URIs: a stock Label Studio
server shows them with no setup, and resolves a relative path against its own URLs instead). The
CSV and MTurk sheets name them, by default as those local paths, which MTurk cannot load: the
folder is to be uploaded to a web host and the export given its URL (`image_url_prefix`), which
the CSV, MTurk and Label Studio sheets then name each image by.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pandas as pd
from PIL import Image

from audiobench.data import load_index
from audiobench.errors import AudiobenchError
from audiobench.escaping import html_text
from audiobench.store import RunDirectory, atomic_write_bytes, make_directory, read_inside

FORMATS = ("html", "csv", "mturk", "labelstudio")
PER_METHOD = 15  # the paper rated 15 test images per method
KEY_FILE = "key.csv"
MTURK_ANSWER = "rating"  # the MTurk layout's rating element; results name it Answer.rating
QUESTION = "How well does the image show the sound's label?"
ANCHORS = {1: "not at all", 2: "slightly", 3: "somewhat", 4: "well", 5: "perfectly"}
# What audiobench writes (PNG) and what datasets' frames are (PNG or JPEG): shown by every
# browser and crowd tool, whatever name or type the sheet gives them.
IMAGE_FORMATS = ("PNG", "JPEG")
# A cell a spreadsheet would run as a formula (OWASP's CSV injection list: = + - @ tab CR), or one
# that only looks neutralised (leading quotes before such a character); see `neutralise`.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")
# The characters a URL may hold unencoded (RFC 3986) but "#": a fragment would hide the file name
# the prefix is joined with from the server. Quotes, spaces and <> would break the HTML and CSV.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]+")


@dataclass(frozen=True)
class Item:
    item_id: str
    image: str  # source image path
    label: str
    method: str
    run_dir: str
    sample_id: str
    kind: str  # "rating", "check-true" (expect >= 4) or "check-wrong" (expect <= 2)
    folder: str = ""  # what `image` may not leave: its run or dataset ("": the image's folder)


def build_items(
    run_dirs: list[Path], per_method: int | None = None, seed: int = 0, attention_checks: int = 2
) -> list[Item]:
    """The shuffled, blinded items: `per_method` shared samples per run plus the checks.

    `per_method` None is the paper's 15, or every shared sample when the runs share fewer (a
    demo, a small split): a default should work where it can. A number asked for is kept to,
    and more than the runs share is an error that says how many there are."""
    if (per_method is not None and per_method < 1) or attention_checks < 0:
        raise AudiobenchError(
            f"--per-method must be at least 1 and --attention-checks at least 0, not "
            f"{per_method} and {attention_checks}"
        )
    rng = np.random.default_rng(seed)
    tables = {}
    for run_dir in run_dirs:
        run = RunDirectory(run_dir)
        record, table = run.read_run(), run.read_samples()
        if record is None or table is None:
            raise AudiobenchError(f"{run_dir} is not a run directory made by `audiobench run`")
        tables[Path(run_dir)] = (record, table[table.status == "ok"].set_index("id"))
    shared = sorted(set.intersection(*(set(t.index) for _, t in tables.values())))
    count = _samples_to_rate(len(shared), per_method)
    chosen = sorted(rng.choice(shared, count, replace=False).tolist())
    items = []
    for run_dir, (record, table) in tables.items():
        for sample_id in chosen:
            items.append(
                Item(
                    "",
                    str(RunDirectory(run_dir).image_path(sample_id)),
                    str(table.loc[sample_id, "label"]),
                    record["method"],
                    str(run_dir),
                    sample_id,
                    "rating",
                    str(run_dir),
                )
            )
    items += _attention_checks(next(iter(tables.values()))[0], chosen, attention_checks, rng)
    order = rng.permutation(len(items))
    names = rng.choice(16**8, size=len(items), replace=False)
    return [
        Item(**{**asdict(items[i]), "item_id": f"item-{names[k]:08x}"}) for k, i in enumerate(order)
    ]


def _samples_to_rate(shared: int, per_method: int | None) -> int:
    if shared == 0:
        raise AudiobenchError(
            "the runs share no generated sample (one made in every run): nothing to rate"
        )
    if per_method is None:
        return min(shared, PER_METHOD)
    if per_method > shared:
        raise AudiobenchError(
            f"the runs share {shared} generated samples, fewer than --per-method {per_method}: "
            f"pass --per-method {shared} (or fewer)"
        )
    return per_method


def per_method_note(items: list[Item], per_method: int | None) -> str | None:
    """The note for a default `per_method` the runs could not fill (see `build_items`)."""
    rated = len({item.sample_id for item in items if item.kind == "rating"})
    if per_method is not None or rated >= PER_METHOD:
        return None
    return (
        f"{rated} samples shared by every run, fewer than --per-method {PER_METHOD}: "
        f"rating all {rated}"
    )


def hosting_note(output_format: str, image_url_prefix: str | None, out: Path) -> str | None:
    """What an MTurk export without image URLs still needs: hosted images. (MTurk is the one
    tool that loads images only by URL: Label Studio's tasks and the html form embed theirs.)"""
    if output_format != "mturk" or image_url_prefix is not None:
        return None
    return (
        "MTurk loads each image from a URL, and the sheet names local files: "
        f"upload {out / 'images'} to a web host (an S3 bucket, GitHub Pages, a university web "
        "space) and export again with --image-url-prefix set to its URL (same seed, same images)"
    )


def check_url_prefix(image_url_prefix: str) -> None:
    """Refuse anything but an http(s) URL that a file name can be appended to."""
    if not _is_http_url(image_url_prefix):
        raise AudiobenchError(
            "--image-url-prefix must be the http(s) URL of the folder the images are uploaded "
            f"to, such as https://example.org/sheets/images/ (no #, spaces or quotes), not "
            f"{image_url_prefix!r}"
        )


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and bool(_URL_CHARACTERS.fullmatch(text))
    )


def image_reference(item_id: str, image_url_prefix: str | None) -> str:
    """Where a sheet finds an item's image: its path in the export, or the prefix joined (with
    a "/" unless it ends with one) with its percent-encoded file name."""
    name = f"{item_id}.png"
    if image_url_prefix is None:
        return f"images/{name}"
    folder = image_url_prefix if image_url_prefix.endswith("/") else image_url_prefix + "/"
    return folder + quote(name)


def _attention_checks(record: dict, chosen: list[str], count: int, rng) -> list[Item]:
    samples = {s.id: s for s in load_index(record["dataset"], record["split"])}
    labels = sorted({sample.label for sample in samples.values()})
    if count and len(labels) < 2:
        raise AudiobenchError("attention checks need at least two classes in the dataset")
    checks = []
    for sample_id in rng.choice(chosen, min(count, len(chosen)), replace=False).tolist():
        sample = samples[sample_id]
        wrong = rng.choice([label for label in labels if label != sample.label])
        for label, kind in ((sample.label, "check-true"), (str(wrong), "check-wrong")):
            checks.append(
                Item(
                    "",
                    str(sample.frame_path),
                    label,
                    "attention-check",
                    "",
                    sample_id,
                    kind,
                    str(record["dataset"]),
                )
            )
    return checks


def export(
    items: list[Item], out: Path, output_format: str, image_url_prefix: str | None = None
) -> Path:
    """Write the key, the images and the sheet in one format; returns the sheet's path.

    `image_url_prefix`: the URL the `images` folder will be served from, for the csv, mturk and
    labelstudio sheets (the html form always embeds its images, so it refuses one; Label Studio's
    tasks embed theirs without one). Every image is read
    and checked first, so a bad one stops the export before `out` is touched; the checked bytes
    are what is written (the sources are not opened again)."""
    if output_format not in FORMATS:
        raise AudiobenchError(f"--format must be one of {', '.join(FORMATS)}")
    if image_url_prefix is not None:
        if output_format == "html":
            raise AudiobenchError(
                "--image-url-prefix is for the csv, mturk and labelstudio formats: the html "
                "form embeds its images"
            )
        check_url_prefix(image_url_prefix)
    images = {item.item_id: _checked_image(item) for item in items}
    out = make_directory(out)
    make_directory(out / "images")
    for item_id, data in images.items():
        atomic_write_bytes(out / "images" / f"{item_id}.png", data)
    key = pd.DataFrame([asdict(item) for item in items]).drop(columns=["image", "folder"])
    atomic_write_bytes(out / KEY_FILE, csv_bytes(key))
    if output_format == "html":
        return _write_html(items, out)
    return _SHEET_WRITERS[output_format](items, out, image_url_prefix)


def _checked_image(item: Item) -> bytes:
    """The bytes of an item's image, refused (naming the file) unless it is a regular file
    inside its run or dataset, reached through no link out of it, and a real PNG or JPEG: the
    sheets go to crowd workers, so whatever is read here is published."""
    path = Path(item.image)
    data = read_inside(path, Path(item.folder or path.parent))
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image.verify()
    except Image.UnidentifiedImageError as error:
        raise AudiobenchError(f"{path} is not a PNG or JPEG image") from error
    except Exception as error:  # PIL raises many types for damaged images
        raise AudiobenchError(f"{path} is a damaged image ({error})") from error
    return data


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV with CRLF line ends (RFC 4180), every text cell neutralised.

    CRLF: with pandas' default "\n" a value holding a bare "\r" is written unquoted, and every
    CSV reader then splits the row there. Neutralised: labels, method names and ids come from
    strangers' runs and datasets, and these files are opened in spreadsheets. Only text (object
    or string) columns are: a number such as -3 is a value to a spreadsheet, not a formula, and a
    prefix would turn it into text."""
    safe = table.copy()
    for column in table.select_dtypes(include=["object", "string"]).columns:
        safe[column] = table[column].map(neutralise)
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def neutralise(value: object) -> object:
    """A text that a spreadsheet would run as a formula, prefixed with "'" so it shows as text.

    Texts that already start with quotes before such a character get one more, so that
    `restore` undoes exactly this: "'=x" is written "''=x" and read back as "'=x", never "=x".
    Anything else (a number, a missing value) is returned as it is."""
    return f"'{value}" if isinstance(value, str) and _FORMULA.match(value) else value


def restore(value: str) -> str:
    """The text `neutralise` was given: one leading "'" removed where it added one."""
    return value[1:] if _NEUTRALISED.match(value) else value


def _render(template: str, **values: object) -> str:
    """A template of `human_eval/templates`, every value escaped for HTML and XML alike."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("audiobench.human_eval", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(template).render(question=QUESTION, anchors=ANCHORS, **values)


def _written_image(out: Path, item_id: str) -> bytes:
    """The copy of an item's image that export checked and wrote (the source is not read again)."""
    return (out / "images" / f"{item_id}.png").read_bytes()


def _data_uri(image: bytes) -> str:
    """An image as a `data:` URI, typed by what it is (a dataset's frame may be a JPEG)."""
    with Image.open(io.BytesIO(image), formats=IMAGE_FORMATS) as opened:
        media_type = Image.MIME[str(opened.format)]
    return f"data:{media_type};base64,{base64.b64encode(image).decode()}"


def _write_html(items: list[Item], out: Path) -> Path:
    page = _render(
        "form.html.j2",
        items=[
            {
                "id": item.item_id,
                "label": item.label,
                "image": base64.b64encode(_written_image(out, item.item_id)).decode(),
            }
            for item in items
        ],
    )
    atomic_write_bytes(out / "form.html", page.encode("utf-8"))
    return out / "form.html"


def _write_csv(items: list[Item], out: Path, image_url_prefix: str | None) -> Path:
    sheet = pd.DataFrame(
        {
            "item_id": [i.item_id for i in items],
            "image": [image_reference(i.item_id, image_url_prefix) for i in items],
            "label": [i.label for i in items],
            "rater": "",
            "rating": "",
        }
    )
    atomic_write_bytes(out / "sheet.csv", csv_bytes(sheet))
    return out / "sheet.csv"


def _write_mturk(items: list[Item], out: Path, image_url_prefix: str | None) -> Path:
    """The batch CSV and the HTML layout it fills. MTurk pastes each cell into the layout as it
    is (a text replacement of `${column}`), so the cells the layout shows are HTML-escaped here."""
    batch = pd.DataFrame(
        {
            "item_id": [i.item_id for i in items],
            "image_url": [html_text(image_reference(i.item_id, image_url_prefix)) for i in items],
            "label": [html_text(i.label) for i in items],
        }
    )
    atomic_write_bytes(out / "mturk_batch.csv", csv_bytes(batch))
    layout = _render("mturk.html.j2", answer=MTURK_ANSWER)
    atomic_write_bytes(out / "mturk_template.html", layout.encode("utf-8"))
    return out / "mturk_batch.csv"


def _write_labelstudio(items: list[Item], out: Path, image_url_prefix: str | None) -> Path:
    """Tasks whose images are embedded (or hosted at `image_url_prefix`), and the labelling
    config that shows each with its label and a 1-5 rating."""
    tasks = [
        {
            "data": {
                "image": _task_image(out, i.item_id, image_url_prefix),
                "label": i.label,
                "item_id": i.item_id,
            }
        }
        for i in items
    ]
    atomic_write_bytes(out / "labelstudio_tasks.json", json.dumps(tasks, indent=1).encode())
    config = _render("labelstudio_config.xml.j2")
    atomic_write_bytes(out / "labelstudio_config.xml", config.encode("utf-8"))
    return out / "labelstudio_tasks.json"


def _task_image(out: Path, item_id: str, image_url_prefix: str | None) -> str:
    if image_url_prefix is None:
        return _data_uri(_written_image(out, item_id))
    return image_reference(item_id, image_url_prefix)


_SHEET_WRITERS = {
    "csv": _write_csv,
    "mturk": _write_mturk,
    "labelstudio": _write_labelstudio,
}
