"""Blinded rating sheets: the same samples for every method, shuffled, with attention checks.

Every format shows one item at a time as (image, label) and asks for a 1-5 rating of how well
the image shows the label (the paper's relevance question). Item ids are random, so nothing in a
sheet names a method or a run; `key.csv` maps them back. Attention checks are reference frames
shown with their true label (should be rated high) and with another class's label (low).

Run folders and datasets may come from strangers and the sheets go to other strangers, so every
image is checked before anything is written (see `_checked_image`), and every CSV cell that a
spreadsheet would run as a formula is neutralised (see `neutralise`).
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from audiobench.data import load_index
from audiobench.errors import AudiobenchError
from audiobench.store import RunDirectory, atomic_write_bytes, make_directory, read_inside

FORMATS = ("html", "csv", "mturk", "labelstudio")
KEY_FILE = "key.csv"
QUESTION = "How well does the image show the sound's label?"
ANCHORS = {1: "not at all", 2: "slightly", 3: "somewhat", 4: "well", 5: "perfectly"}
# What audiobench writes (PNG) and what datasets' frames are (PNG or JPEG): shown by every
# browser and crowd tool, whatever name or type the sheet gives them.
IMAGE_FORMATS = ("PNG", "JPEG")
# A cell a spreadsheet would run as a formula (OWASP's CSV injection list: = + - @ tab CR), or one
# that only looks neutralised (leading quotes before such a character); see `neutralise`.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")


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
    run_dirs: list[Path], per_method: int = 15, seed: int = 0, attention_checks: int = 2
) -> list[Item]:
    """The shuffled, blinded items: `per_method` shared samples per run plus the checks."""
    if per_method < 1 or attention_checks < 0:
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
    if len(shared) < per_method:
        raise AudiobenchError(
            f"the runs share {len(shared)} generated samples, fewer than --per-method {per_method}"
        )
    chosen = sorted(rng.choice(shared, per_method, replace=False).tolist())
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


def export(items: list[Item], out: Path, output_format: str) -> Path:
    """Write the key, the images and the sheet in one format; returns the sheet's path.

    Every image is read and checked first, so a bad one stops the export before `out` is
    touched; the checked bytes are what is written (the sources are not opened again)."""
    if output_format not in FORMATS:
        raise AudiobenchError(f"--format must be one of {', '.join(FORMATS)}")
    images = {item.item_id: _checked_image(item) for item in items}
    out = make_directory(out)
    make_directory(out / "images")
    for item_id, data in images.items():
        atomic_write_bytes(out / "images" / f"{item_id}.png", data)
    key = pd.DataFrame([asdict(item) for item in items]).drop(columns=["image", "folder"])
    atomic_write_bytes(out / KEY_FILE, csv_bytes(key))
    return _WRITERS[output_format](items, out)


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


def _write_html(items: list[Item], out: Path) -> Path:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("audiobench.human_eval", "templates"), autoescape=True
    )
    page = environment.get_template("form.html.j2").render(
        question=QUESTION,
        anchors=ANCHORS,
        items=[
            {
                "id": item.item_id,
                "label": item.label,
                # the copies export checked and wrote, not the sources again
                "image": base64.b64encode(
                    (out / "images" / f"{item.item_id}.png").read_bytes()
                ).decode(),
            }
            for item in items
        ],
    )
    atomic_write_bytes(out / "form.html", page.encode("utf-8"))
    return out / "form.html"


def _write_csv(items: list[Item], out: Path) -> Path:
    sheet = pd.DataFrame(
        {
            "item_id": [i.item_id for i in items],
            "image": [f"images/{i.item_id}.png" for i in items],
            "label": [i.label for i in items],
            "rater": "",
            "rating": "",
        }
    )
    atomic_write_bytes(out / "sheet.csv", csv_bytes(sheet))
    return out / "sheet.csv"


def _write_mturk(items: list[Item], out: Path) -> Path:
    batch = pd.DataFrame(
        {
            "item_id": [i.item_id for i in items],
            "image_url": [f"images/{i.item_id}.png" for i in items],
            "label": [i.label for i in items],
        }
    )
    atomic_write_bytes(out / "mturk_batch.csv", csv_bytes(batch))
    options = "".join(
        f'<crowd-radio-button name="r{value}" value="{value}">{value} ({anchor})'
        "</crowd-radio-button>"
        for value, anchor in ANCHORS.items()
    )
    template = (
        '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script><crowd-form>'
        f'<p>{QUESTION}</p><p><b>${{label}}</b></p><img src="${{image_url}}" width="384">'
        f"<crowd-radio-group>{options}</crowd-radio-group>"
        '<input type="hidden" name="item_id" value="${item_id}"></crowd-form>\n'
    )
    atomic_write_bytes(out / "mturk_template.html", template.encode())
    return out / "mturk_batch.csv"


def _write_labelstudio(items: list[Item], out: Path) -> Path:
    tasks = [
        {"data": {"image": f"images/{i.item_id}.png", "label": i.label, "item_id": i.item_id}}
        for i in items
    ]
    atomic_write_bytes(out / "labelstudio_tasks.json", json.dumps(tasks, indent=1).encode())
    config = (
        '<View><Image name="image" value="$image"/><Header value="$label"/>'
        '<Rating name="rating" toName="image" maxRating="5"/></View>\n'
    )
    atomic_write_bytes(out / "labelstudio_config.xml", config.encode())
    return out / "labelstudio_tasks.json"


_WRITERS = {
    "html": _write_html,
    "csv": _write_csv,
    "mturk": _write_mturk,
    "labelstudio": _write_labelstudio,
}
