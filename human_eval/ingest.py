"""Responses from any export format into one tidy ratings table.

Read: the HTML form's CSV (`rater,item_id,rating,...`), a filled CSV sheet (`item_id,...,rater,
rating`), MTurk results (`WorkerId`, `Input.item_id`, `Answer.rating` or one `Answer.rN` flag per
value) and Label Studio JSON exports. Ratings outside 1-5, items not in the key and duplicate
(rater, item) pairs are refused with a message naming the file. Raters who fail more attention
checks than allowed (a true label rated below 4, a wrong label above 2) are dropped and listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audiobench.errors import AudiobenchError

COLUMNS = ("rater", "item", "method", "sample", "label", "rating", "check")


@dataclass(frozen=True)
class Ingested:
    ratings: pd.DataFrame  # COLUMNS, attention-check rows included (check != "rating")
    dropped_raters: list[str]


def read_responses(path: Path) -> pd.DataFrame:
    """(rater, item, rating) rows of one response file, whatever its format."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"response file {path} does not exist")
    if path.suffix == ".json":
        return _label_studio(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not a readable CSV: {error}") from error
    if {"WorkerId", "Input.item_id"} <= set(table.columns):
        return _mturk(table, path)
    if {"rater", "item_id", "rating"} <= set(table.columns):
        return table.rename(columns={"item_id": "item"})[["rater", "item", "rating"]]
    raise AudiobenchError(
        f"{path}: columns {', '.join(table.columns)} are not a known response "
        "format (form CSV, sheet CSV, MTurk results)"
    )


def _mturk(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    if "Answer.rating" in table.columns:
        ratings = table["Answer.rating"]
    else:
        flags = [c for c in table.columns if c.startswith("Answer.r") and c[8:].isdigit()]
        if not flags:
            raise AudiobenchError(f"{path}: MTurk results without Answer.rating or Answer.rN")
        ratings = table[flags].apply(
            lambda row: next((c[8:] for c in flags if row[c].lower() == "true"), ""), axis=1
        )
    return pd.DataFrame(
        {"rater": table["WorkerId"], "item": table["Input.item_id"], "rating": ratings}
    )


def _label_studio(path: Path) -> pd.DataFrame:
    try:
        tasks = json.loads(path.read_text())
        rows = [
            (
                str(annotation.get("completed_by", "")),
                task["data"]["item_id"],
                str(result["value"]["rating"]),
            )
            for task in tasks
            for annotation in task.get("annotations", [])
            for result in annotation.get("result", [])
            if result.get("type") == "rating"
        ]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise AudiobenchError(f"{path} is not a Label Studio JSON export: {error}") from error
    return pd.DataFrame(rows, columns=["rater", "item", "rating"])


def ingest(paths: list[Path], key_path: Path, max_failed_checks: int = 0) -> Ingested:
    """All responses joined with the key, validated, and filtered by attention checks."""
    key = pd.read_csv(key_path, dtype=str, keep_default_na=False).set_index("item_id")
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
        frames.append(responses.assign(rating=ratings.astype(int)))
    table = pd.concat(frames, ignore_index=True)
    duplicated = table[table.duplicated(["rater", "item"])]
    if len(duplicated):
        row = duplicated.iloc[0]
        raise AudiobenchError(f"rater {row['rater']} rated item {row['item']} more than once")
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
