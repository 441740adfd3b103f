"""Human-eval exports of strangers' run folders (issue 17, items 3 and 6): no image is read
through a link, from outside its run or dataset, or from a file that is not an image, and no CSV
cell reaches a spreadsheet as a formula, while the key still reads back exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from audiobench.human_eval.export import build_items, csv_bytes, export, neutralise, restore
from audiobench.human_eval.ingest import ingest, read_ratings, read_responses
from PIL import Image

from audiobench.escaping import html_text
from audiobench.runner import RunSettings, execute

HOSTILE = ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "'=x", "\tx", "\rx", "''-x"]
HARMLESS = ["dog barking", "'quoted", "a=b", "x-1"]


@pytest.fixture(scope="module")
def run(demo_dir, tmp_path_factory) -> Path:
    """A reference run; its dataset is the demo's frames and index, copied so tests can edit."""
    folder = tmp_path_factory.mktemp("trust")
    shutil.copytree(demo_dir, folder / "data", ignore=shutil.ignore_patterns("*.wav"))
    settings = RunSettings(method="reference", data_dir=folder / "data", out=folder, profile="tiny")
    return execute(settings).run_dir


def copy_run(run: Path, tmp_path: Path) -> Path:
    """The run and its dataset copied into `tmp_path`, the run pointing at the copied dataset."""
    record = json.loads((run / "run.json").read_text())
    target, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(record["dataset"], data)
    (target / "run.json").write_text(json.dumps({**record, "dataset": str(data)}))
    return target


def sample_ids(run: Path) -> list[str]:
    table = pd.read_parquet(run / "samples.parquet")
    return sorted(table.id[table.status == "ok"])


def export_all(cli, run: Path, out: Path, checks: bool = False, output_format: str = "html"):
    """Export every sample of `run` (so a tampered one is always chosen), with an attention
    check on every frame when `checks`."""
    count = len(sample_ids(run))
    return cli(
        "human-eval", "export", run, "--out", out, "--per-method", count,
        "--attention-checks", count if checks else 0, "--format", output_format,
    )  # fmt: skip


def assert_refused(result: tuple[int, str, str], path: Path, message: str, out: Path) -> None:
    code, _, err = result
    assert code == 2 and err.count("\n") == 1, err
    assert str(path) in err and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("output_format", ["html", "csv"])
@pytest.mark.parametrize("target", ["secret.txt", "secret.png", "inside"])
def test_a_symlinked_run_image_is_refused_before_anything_is_written(
    run, tmp_path, cli, target, output_format
):
    """A link is refused whatever it points at: a secret, a real image outside, or another image
    of the same run."""
    copy = copy_run(run, tmp_path)
    first, second = sample_ids(copy)[:2]
    (tmp_path / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "secret.png")
    image = copy / "images" / f"{first}.png"
    image.unlink()
    image.symlink_to(copy / "images" / f"{second}.png" if target == "inside" else tmp_path / target)
    out = tmp_path / "sheets"
    result = export_all(cli, copy, out, output_format=output_format)
    assert_refused(result, image, "is a symbolic link", out)


def test_an_images_folder_linked_out_of_the_run_is_refused(run, tmp_path, cli):
    copy = copy_run(run, tmp_path)
    shutil.move(copy / "images", tmp_path / "elsewhere")
    (copy / "images").symlink_to(tmp_path / "elsewhere")
    out = tmp_path / "sheets"
    assert_refused(export_all(cli, copy, out), copy / "images", f"leads outside {copy}", out)


def test_links_that_stay_inside_the_run_are_followed(run, tmp_path, cli):
    copy = copy_run(run, tmp_path)
    shutil.move(copy / "images", copy / "moved")
    (copy / "images").symlink_to("moved")
    code, _, err = export_all(cli, copy, tmp_path / "sheets", output_format="csv")
    assert code == 0, err
    assert len(list((tmp_path / "sheets" / "images").glob("*.png"))) == len(sample_ids(copy))


def make_text(path: Path) -> str:
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return "is not a PNG or JPEG image"


def make_truncated(path: Path) -> str:
    path.write_bytes(path.read_bytes()[:60])
    return "is a damaged image"


def make_folder(path: Path) -> str:
    path.mkdir()
    return "is not a regular file"


def make_fifo(path: Path) -> str:
    os.mkfifo(path)  # reading it would wait forever for a writer
    return "is not a regular file"


@pytest.mark.parametrize("make", [make_text, make_truncated, make_folder, make_fifo])
def test_a_run_image_that_is_not_an_image_file_is_refused(run, tmp_path, cli, make):
    copy = copy_run(run, tmp_path)
    image = copy / "images" / f"{sample_ids(copy)[-1]}.png"
    if make in (make_folder, make_fifo):
        image.unlink()
    message = make(image)
    out = tmp_path / "sheets"
    assert_refused(export_all(cli, copy, out), image, message, out)


def test_an_attention_check_frame_that_is_not_an_image_is_refused(run, tmp_path, cli):
    copy = copy_run(run, tmp_path)
    frame = tmp_path / "data" / "frames" / f"{sample_ids(copy)[0]}.png"
    message = make_text(frame)
    out = tmp_path / "sheets"
    assert_refused(export_all(cli, copy, out, checks=True), frame.resolve(), message, out)
    assert export_all(cli, copy, out, checks=False)[0] == 0  # only the check reads the frame


def test_an_attention_check_frame_linked_out_of_the_dataset_is_refused(run, tmp_path, cli):
    copy = copy_run(run, tmp_path)
    frame = tmp_path / "data" / "frames" / f"{sample_ids(copy)[0]}.png"
    shutil.move(frame, tmp_path / "outside.png")
    frame.symlink_to(tmp_path / "outside.png")
    out = tmp_path / "sheets"
    code, _, err = export_all(cli, copy, out, checks=True)
    assert code == 2 and err.count("\n") == 1 and "points outside the dataset" in err, err
    assert not out.exists()


# --- formula injection ---------------------------------------------------------------------


def cells(path: Path, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


@pytest.fixture
def hostile(run, tmp_path):
    """Items whose labels and method names are formulas (and harmless look-alikes)."""
    labels = HOSTILE + HARMLESS
    copy = copy_run(run, tmp_path)
    items = build_items([copy], per_method=len(sample_ids(copy)), attention_checks=0)
    assert len(items) >= len(labels)
    return [
        replace(item, label=labels[n % len(labels)], method=f"-{n}{item.method}")
        for n, item in enumerate(items)
    ]


def written(label: str) -> str:
    return f"'{label}" if label in HOSTILE else label


@pytest.mark.parametrize(
    ("output_format", "sheet"), [("csv", "sheet.csv"), ("mturk", "mturk_batch.csv")]
)
def test_formulas_are_neutralised_in_every_csv(hostile, tmp_path, output_format, sheet):
    export(hostile, tmp_path / "out", output_format)
    expected = [written(item.label) for item in hostile]
    # MTurk pastes its batch's cells into an HTML layout: they are HTML-escaped, then neutralised
    shown = html_text if output_format == "mturk" else str
    assert cells(tmp_path / "out" / sheet, "label") == [neutralise(shown(i.label)) for i in hostile]
    assert cells(tmp_path / "out" / "key.csv", "label") == expected
    assert cells(tmp_path / "out" / "key.csv", "method") == [f"'{i.method}" for i in hostile]


def test_the_key_and_the_sheet_read_back_exactly(hostile, tmp_path):
    sheet = export(hostile, tmp_path / "out", "csv")
    filled = pd.read_csv(sheet, dtype=str, keep_default_na=False).assign(rater="=ann", rating="4")
    # saved raw, as a spreadsheet would ("\r\n" so that the "\r" in a label is quoted)
    filled.to_csv(tmp_path / "filled.csv", index=False, lineterminator="\r\n")
    form = tmp_path / "form.csv"
    pd.DataFrame({"rater": "'-bob", "item_id": [i.item_id for i in hostile], "rating": "3"}).to_csv(
        form, index=False
    )
    result = ingest([tmp_path / "filled.csv", form], tmp_path / "out" / "key.csv")
    got = {
        (row.rater, row.item, row.label, row.method, row.sample)
        for row in result.ratings.itertuples()
    }
    assert got == {
        (rater, item.item_id, item.label, item.method, item.sample_id)
        for item in hostile
        for rater in ("=ann", "'-bob")  # raters' own text comes through untouched
    }


def test_a_neutralised_sheet_reads_back_its_ids_and_raters(tmp_path):
    table = pd.DataFrame(
        {"item_id": HOSTILE, "image": "i.png", "label": "l", "rater": HOSTILE, "rating": "5"}
    )
    path = tmp_path / "sheet.csv"
    path.write_bytes(csv_bytes(table))
    assert "'=HYPERLINK" in path.read_text()
    responses = read_responses(path)
    assert list(responses.item) == HOSTILE and list(responses.rater) == HOSTILE


def test_numbers_stay_numbers_and_neutralising_is_reversible():
    table = pd.DataFrame({"n": [-3, 2], "x": [-0.5, 1.0], "s": ["-3", "ok"]})
    assert csv_bytes(table) == b"n,x,s\r\n-3,-0.5,'-3\r\n2,1.0,ok\r\n"
    for text in [*HOSTILE, *HARMLESS, "", "'", "''", "'''=", "=", "-"]:
        assert restore(neutralise(text)) == text
        assert neutralise(text)[:1] not in {"=", "+", "-", "@", "\t", "\r"}


def test_the_ratings_table_is_neutralised_and_analyze_reads_it_back(hostile, tmp_path, cli):
    """ingest's ratings.csv is opened in spreadsheets too; analyze must see the real names."""
    export(hostile, tmp_path / "out", "csv")
    form = tmp_path / "form.csv"
    ratings = [str(1 + n % 5) for n in range(len(hostile))]
    pd.DataFrame(
        {"rater": "ann", "item_id": [i.item_id for i in hostile], "rating": ratings}
    ).to_csv(form, index=False)
    code, _, _ = cli(
        "human-eval",
        "ingest",
        form,
        "--key",
        tmp_path / "out" / "key.csv",
        "--out",
        tmp_path / "r.csv",
    )
    assert code == 0
    assert cells(tmp_path / "r.csv", "method") == [f"'{i.method}" for i in hostile]
    assert list(read_ratings(tmp_path / "r.csv").method) == [i.method for i in hostile]
    assert list(read_ratings(tmp_path / "r.csv").rating) == [int(r) for r in ratings]
