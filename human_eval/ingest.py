"""Responses from any export format into one tidy ratings table.

Read: the HTML form's CSV (`rater,item_id,rating,...`), a filled CSV sheet (`item_id,...,rater,
rating`), MTurk results (`WorkerId`, `Input.item_id`, `Answer.rating` or one `Answer.rN` flag per
value) and Label Studio's JSON, JSON_MIN and CSV exports (the rater is its user id). A file with
no rating in it, ratings outside 1-5, items not in the key and duplicate (rater, item) pairs are
refused with a message naming the file. Raters who fail more attention checks than allowed (a
true label rated below 4, a wrong label above 2) are dropped and listed.

The files export wrote itself (the key, the sheet) have their neutralised cells restored
(`human_eval.export.restore`), so labels and ids come back exactly as they were; files made
elsewhere (the form's download, MTurk results) are read as they are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from audiobench.human_eval.analyze import generated_ratings
from audiobench.human_eval.export import MTURK_ANSWER, restore

from audiobench.errors import AudiobenchError

COLUMNS = ("rater", "item", "method", "sample", "label", "rating", "check")
KEY_COLUMNS = ("item_id", "method", "sample_id", "label", "kind")
ANSWER = f"Answer.{MTURK_ANSWER}"  # what MTurk's results call the layout's rating
# Label Studio's CSV export repeats each task's data, embedded images included (base64 text of a
# few hundred KB each), beyond the csv module's default limit of 128 KiB a field
LARGEST_FIELD = 256 * 2**20


@dataclass(frozen=True)
class Ingested:
    ratings: pd.DataFrame  # COLUMNS, attention-check rows included (check != "rating")
    dropped_raters: list[str]


def read_responses(path: Path) -> pd.DataFrame:
    """(rater, item, rating) rows of one response file, whatever its format; a file that holds
    no rating is an error that names the format it was read as (an empty export, a results file
    of another study), never an empty table that would pass unnoticed."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"response file {path} does not exist")
    responses, form = _parse(path)
    if responses.empty:
        raise AudiobenchError(f"{path}: no ratings in this {form}")
    return responses


def _parse(path: Path) -> tuple[pd.DataFrame, str]:
    """The responses of a file and the name of the format they were read as."""
    if path.suffix == ".json":
        return _label_studio_json(path)
    table = read_table(path)
    columns = set(table.columns)
    if {"WorkerId", "Input.item_id"} <= columns:
        return _mturk(table, path), "MTurk results file"
    if {"annotator", "item_id", "rating"} <= columns:
        rows = zip(table["annotator"], table["item_id"], table["rating"], strict=True)
        return _label_studio_min(rows, path), "Label Studio CSV export"
    if {"rater", "item_id", "rating"} <= columns:
        form = "rating sheet" if "image" in columns else "form download"
        if "image" in columns:  # export's sheet.csv (the form's download has no images)
            table = _restored(table)
        return table[["rater", "item_id", "rating"]].rename(columns={"item_id": "item"}), form
    raise AudiobenchError(
        f"{path}: columns {', '.join(table.columns)} are not a known response format (form "
        "CSV, sheet CSV, MTurk results, Label Studio CSV export)"
    )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV with a header as a table of strings, refusing any row whose length differs from the
    header's: pandas would silently shift such a row's columns (or fill them with blanks)."""
    try:
        with (
            _field_size_limit(LARGEST_FIELD),
            open(path, newline="", encoding="utf-8-sig") as handle,
        ):
            reader = csv.reader(handle, strict=True)
            rows = [(reader.line_num, row) for row in reader if row]
    except (csv.Error, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not a readable CSV: {error}") from error
    if not rows:
        raise AudiobenchError(f"{path} is empty (expected a header line and responses)")
    header = rows[0][1]
    if len(set(header)) != len(header):
        raise AudiobenchError(f"{path}: the header {','.join(header)!r} repeats a column")
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise AudiobenchError(
                f"{path}, line {line}: {len(row)} fields where the header has {len(header)}"
            )
    return pd.DataFrame([row for _, row in rows[1:]], columns=header, dtype=str)


@contextmanager
def _field_size_limit(limit: int) -> Iterator[None]:
    """The csv module's longest field raised for one read (it is one global setting)."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _mturk(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    if ANSWER in table.columns:  # the layout's crowd-star-rating
        ratings = table[ANSWER]
    else:  # one crowd-radio-button per value, from layouts before the star rating
        flags = [c for c in table.columns if c.startswith("Answer.r") and c[8:].isdigit()]
        if not flags:
            raise AudiobenchError(f"{path}: MTurk results without {ANSWER} or Answer.rN")
        ratings = table[flags].apply(
            lambda row: next((c[8:] for c in flags if row[c].lower() == "true"), ""), axis=1
        )
    return pd.DataFrame(
        {"rater": table["WorkerId"], "item": table["Input.item_id"], "rating": ratings}
    )


def _label_studio_json(path: Path) -> tuple[pd.DataFrame, str]:
    """A Label Studio JSON export (tasks with their annotations) or JSON_MIN export (one flat
    record per annotation), told apart by their records."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise TypeError("not a list of records")
        if records and not any("annotations" in r or "data" in r for r in records):
            flat = [(r.get("annotator"), r["item_id"], r.get("rating")) for r in records]
            return _label_studio_min(flat, path), "Label Studio JSON_MIN export"
        rows = [
            (
                _annotator(annotation.get("completed_by", "")),
                str(task["data"]["item_id"]),
                str(result["value"]["rating"]),
            )
            for task in records
            for annotation in task.get("annotations", [])
            for result in annotation.get("result", [])
            if result.get("type") == "rating"
        ]
    # ValueError: bad UTF-8 or JSON, or an integer too long to convert; the others: wrong shape
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as error:
        raise AudiobenchError(f"{path} is not a Label Studio JSON export: {error}") from error
    return pd.DataFrame(rows, columns=["rater", "item", "rating"]), "Label Studio JSON export"


def _label_studio_min(records: Iterable[tuple[Any, Any, Any]], path: Path) -> pd.DataFrame:
    """(annotator, item id, rating) of a JSON_MIN or CSV export, where the rating is the list
    `[{"rating": 4}]` (in the CSV as JSON text). A record with no rating is a task nobody rated
    (exported with "all tasks"), not a response."""
    rows = []
    for annotator, item, rating in records:
        if rating in (None, ""):
            continue
        try:
            ratings = json.loads(rating) if isinstance(rating, str) else rating
            [value] = [entry["rating"] for entry in ratings]
        except (ValueError, RecursionError, KeyError, TypeError) as error:
            raise AudiobenchError(
                f"{path}: item {item!r}: {rating!r} is not one Label Studio rating"
            ) from error
        if annotator in (None, ""):
            raise AudiobenchError(f"{path}: item {item!r} has a rating but no annotator")
        rows.append((_annotator(annotator), str(item), str(value)))
    return pd.DataFrame(rows, columns=["rater", "item", "rating"])


def _annotator(completed_by: object) -> str:
    """A rater as Label Studio's own exports name them: the user id, or the email where the
    user is given as an object (what its JSON_MIN and CSV converters do)."""
    if isinstance(completed_by, dict):
        return str(completed_by.get("email", completed_by.get("id", "")))
    return str(completed_by)


def ingest(paths: list[Path], key_path: Path, max_failed_checks: int = 0) -> Ingested:
    """All responses joined with the key, validated, and filtered by attention checks."""
    if not paths:
        raise AudiobenchError("no response files to ingest")
    key = _read_key(Path(key_path))
    frames = []
    for path in paths:
        responses = read_responses(path)
        ratings = pd.to_numeric(responses["rating"], errors="coerce")
        bad = responses[~ratings.isin([1, 2, 3, 4, 5])]
        if len(bad):
            raise AudiobenchError(
                f"{path}: rating {bad['rating'].iloc[0]!r} for item "
                f"{bad['item'].iloc[0]} is not an integer from 1 to 5"
            )
        unknown = sorted(set(responses["item"]) - set(key.index))
        if unknown:
            raise AudiobenchError(f"{path}: items not in {key_path}: {', '.join(unknown[:3])}")
        frames.append(responses.assign(rating=ratings.astype(int), source=str(path)))
    table = pd.concat(frames, ignore_index=True)
    duplicated = table[table.duplicated(["rater", "item"])]
    if len(duplicated):
        row = duplicated.iloc[0]
        raise AudiobenchError(
            f"{row['source']}: rater {row['rater']} rated item {row['item']} more than once"
        )
    joined = table.join(key, on="item")
    tidy = pd.DataFrame(
        {
            "rater": joined["rater"],
            "item": joined["item"],
            "method": joined["method"],
            "sample": joined["sample_id"],
            "label": joined["label"],
            "rating": joined["rating"],
            "check": joined["kind"],
        }
    )
    failed = ((tidy.check == "check-true") & (tidy.rating < 4)) | (
        (tidy.check == "check-wrong") & (tidy.rating > 2)
    )
    failures = failed.groupby(tidy.rater).sum()
    dropped = sorted(failures[failures > max_failed_checks].index)
    return Ingested(tidy[~tidy.rater.isin(dropped)].reset_index(drop=True), dropped)


def _read_key(path: Path) -> pd.DataFrame:
    """The export's key indexed by item id, refused (naming it) if it is not a usable key."""
    if not path.is_file():
        raise AudiobenchError(f"key file {path} does not exist")
    key = _restored(read_table(path))
    missing = [c for c in KEY_COLUMNS if c not in key.columns]
    if missing:
        raise AudiobenchError(f"{path} is not a key written by export: no {', '.join(missing)}")
    repeated = key.item_id[key.item_id.duplicated()]
    if len(repeated):
        raise AudiobenchError(f"{path} lists item {repeated.iloc[0]} more than once")
    return key.set_index("item_id")


def _restored(table: pd.DataFrame) -> pd.DataFrame:
    """A table export wrote, every cell as it was before `csv_bytes` neutralised it."""
    return table.map(restore)


def read_ratings(path: Path) -> pd.DataFrame:
    """The ratings of generated images in a table `ingest` wrote (with `csv_bytes`: formula-like
    texts neutralised), or one made elsewhere with at least rater, item, method and rating: text
    cells restored, columns validated (`generated_ratings`), errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"ratings file {path} does not exist")
    return generated_ratings(_restored(read_table(path)), source=str(path))
