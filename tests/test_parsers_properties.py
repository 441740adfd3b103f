"""Property-based tests of the parsers that read files users bring: VGGSound lists and ratings.

Two properties per parser. Round trip: any well-formed table, written the way such files are
written (the csv module, pandas as `export` does, JSON), parses back to exactly its entries,
whatever the ids and labels hold (a leading '-', commas, quotes, newlines, unicode). Robustness:
malformed input (wrong columns, bad quoting, bad or duplicated values, an empty file, random
bytes) gives either valid entries or an `AudiobenchError` naming the file, never another
exception, which the CLI would print as a traceback instead of one actionable line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from audiobench.human_eval.export import csv_bytes
from audiobench.human_eval.ingest import COLUMNS, ingest, read_responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiobench.data.vggsound import ClipEntry, read_classes, read_clip_list, read_filter
from audiobench.errors import AudiobenchError
from audiobench.store import SAMPLE_ID

# Bounded and derandomized: the same examples on every run and machine, a few seconds in all.
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
YTID_PATTERN = re.compile(r"[A-Za-z0-9_\-]{11}")

ytids = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=11, max_size=11)
# Text as it turns up in labels and rater names: any character a file can hold, with the ones
# that break naive parsers (separators, quotes, line ends, a leading '-') drawn often.
tricky = st.sampled_from([",", '"', "'", "\n", "\r", "\r\n", " ", "-", "é", "漢", "🔊", "\ufeff"])
texts = st.lists(
    st.one_of(tricky, st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=12
).map("".join)
labels = texts.filter(lambda text: text.strip() != "")
noise = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda text: text.encode("utf-8")),
    st.lists(st.one_of(tricky, st.sampled_from(["a", "1", "2"])), max_size=60).map(
        lambda parts: "".join(parts).encode("utf-8")
    ),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for every example (hypothesis cannot use a function-scoped tmp_path)."""
    return tmp_path_factory.mktemp("parser-properties")


def rows_csv(rows: list[list[str]], quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, quoting=quoting).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def outcome(parse: Callable[[], Any], path: Path) -> Any:
    """The parser's result, or None after checking that its refusal is an AudiobenchError
    naming `path` (any other exception fails the test by propagating)."""
    try:
        return parse()
    except AudiobenchError as error:
        assert str(path) in str(error), f"the message does not name the file: {error}"
        return None


@st.composite
def cell_rows(draw, cells: st.SearchStrategy[str]) -> list[list[str]]:
    """Rows of any width (including the expected one) from a pool of plausible cells."""
    return draw(st.lists(st.lists(cells, min_size=0, max_size=6), min_size=0, max_size=6))


def mangle(data: bytes, draw) -> bytes:
    """Break a well-formed file a little: truncate it or insert a stray quote or comma."""
    if not data:
        return data
    position = draw(st.integers(0, len(data)))
    how = draw(st.sampled_from(["truncate", "quote", "comma", "none"]))
    if how == "truncate":
        return data[:position]
    insert = {"quote": b'"', "comma": b",", "none": b""}[how]
    return data[:position] + insert + data[position:]


# --- audiobench/data/vggsound.py: read_clip_list -------------------------------------------


clip_entries = st.lists(
    st.builds(
        ClipEntry,
        ytid=ytids,
        start=st.integers(0, 999_999),
        label=labels,
        split=st.sampled_from(["train", "test"]),
    ),
    min_size=1,
    max_size=8,
)


def assert_valid_clip(entry: ClipEntry) -> None:
    """What `prepare` relies on: a real-looking YouTube id, a label, a known split, and an id
    that is a plain file name (it becomes audio/<id>.wav)."""
    assert YTID_PATTERN.fullmatch(entry.ytid), entry
    assert isinstance(entry.start, int) and entry.start >= 0, entry
    assert entry.label and entry.label == entry.label.strip(), entry
    assert entry.split in ("train", "test"), entry
    assert SAMPLE_ID.fullmatch(entry.id), entry


@PROPERTY
@given(entries=clip_entries, header=st.booleans(), quoting=st.sampled_from([0, 1]))
def test_clip_list_round_trip(folder, entries, header, quoting):
    rows = [[e.ytid, str(e.start), e.label, e.split] for e in entries]
    if header:
        rows.insert(0, ["youtube_id", "start_seconds", "label", "split"])
    path = put(folder / "official.csv", rows_csv(rows, quoting))
    expected = [ClipEntry(e.ytid, e.start, e.label.strip(), e.split) for e in entries]
    assert read_clip_list(path) == expected


@PROPERTY
@given(entries=clip_entries)
def test_test_list_round_trip(folder, entries):
    """The `<ytid>_<start:06d>.mp4,label` test list (ids starting with '-' are common)."""
    rows = [[f"{e.ytid}_{e.start:06d}.mp4", e.label] for e in entries]
    path = put(folder / "test.csv", rows_csv(rows))
    assert read_clip_list(path) == [
        ClipEntry(e.ytid, e.start, e.label.strip(), "test") for e in entries
    ]


clip_cells = st.one_of(
    ytids,
    st.sampled_from(["train", "test", "valid", "", " ", "²", "١٢", "-1", "7", "007", "1.5"]),
    st.sampled_from(["../../../ab", "/etc/passwd", "a/b/c/d/e/f", "..\\..\\..\\a"]),
    ytids.map(lambda ytid: f"{ytid}_000030.mp4"),
    texts,
)


@PROPERTY
@given(data=st.data())
def test_malformed_clip_lists_give_valid_entries_or_a_named_error(folder, data):
    kind = data.draw(st.sampled_from(["noise", "rows", "one-bad-cell", "mangled"]))
    if kind == "noise":
        content = data.draw(noise)
    elif kind == "rows":
        content = rows_csv(data.draw(cell_rows(clip_cells)))
    elif kind == "one-bad-cell":  # a good list but for one cell (a "../" id, a "²" start, ...)
        rows = [[e.ytid, str(e.start), e.label, e.split] for e in data.draw(clip_entries)]
        rows[data.draw(st.integers(0, len(rows) - 1))][data.draw(st.integers(0, 3))] = data.draw(
            clip_cells
        )
        content = rows_csv(rows)
    else:
        entries = data.draw(clip_entries)
        content = mangle(
            rows_csv([[e.ytid, str(e.start), e.label, e.split] for e in entries]), data.draw
        )
    path = put(folder / "clips, malformed.csv", content)
    entries = outcome(lambda: read_clip_list(path), path)
    for entry in entries or []:
        assert_valid_clip(entry)


@pytest.mark.parametrize(
    "row",
    [
        ["abcdefghijk", "²", "dog", "train"],  # isdigit() but not int()
        ["abcdefghijk", "١٢", "dog", "train"],
        ["../../../ab", "1", "dog", "train"],  # 11 characters that climb out of audio/
        ["abc/def/ghi", "1", "dog", "test"],
        ["abcdefghijk", "1", " ", "test"],  # no label
        ["../../../ab_000001.mp4", "dog"],
    ],
)
def test_clip_lists_refuse_ids_and_starts_that_would_break_prepare(tmp_path, row):
    """The cells the property tests found; each is refused with the file and line named."""
    path = put(tmp_path / "list.csv", rows_csv([row]))
    with pytest.raises(AudiobenchError, match=rf"{re.escape(str(path))}, line 1: expected"):
        read_clip_list(path)


# --- read_classes ------------------------------------------------------------------------


@PROPERTY
@given(
    classes=st.dictionaries(texts, st.tuples(st.integers(0, 10**6), texts), min_size=1, max_size=8)
)
def test_class_list_round_trip(folder, classes):
    rows = [[label, str(count), group] for label, (count, group) in classes.items()]
    path = put(folder / "classes.csv", rows_csv(rows))
    assert read_classes(path) == {label: group for label, (_, group) in classes.items()}


@PROPERTY
@given(data=st.data())
def test_malformed_class_lists_give_valid_classes_or_a_named_error(folder, data):
    kind = data.draw(st.sampled_from(["noise", "rows", "duplicate"]))
    if kind == "noise":
        content = data.draw(noise)
    elif kind == "rows":
        content = rows_csv(data.draw(cell_rows(st.one_of(texts, st.sampled_from(["dog", "7"])))))
    else:
        rows = [[label, "1", "animals"] for label in data.draw(st.lists(labels, min_size=1))]
        content = rows_csv([*rows, [rows[0][0], "2", "vehicles"]])
    path = put(folder / "classes-malformed.csv", content)
    classes = outcome(lambda: read_classes(path), path)
    if kind == "duplicate":
        assert classes is None, "a class listed twice must be refused, not silently overwritten"
    for label, group in (classes or {}).items():
        assert isinstance(label, str) and isinstance(group, str)


# --- read_filter ---------------------------------------------------------------------------


filter_ids = st.one_of(ytids, st.builds(lambda y, s: f"{y}_{s:06d}", ytids, st.integers(0, 10**5)))


@PROPERTY
@given(
    ids=st.sets(filter_ids, max_size=10),
    ending=st.sampled_from(["\n", "\r\n"]),
    padding=st.sampled_from(["", " ", "\t"]),
    blank_lines=st.booleans(),
)
def test_filter_file_round_trip(folder, ids, ending, padding, blank_lines):
    lines = [f"{padding}{clip_id}{padding}" for clip_id in sorted(ids)]
    if blank_lines:
        lines = [line for clip_id in lines for line in (clip_id, "")]
    path = put(folder / "filter.txt", ending.join(lines).encode("utf-8"))
    assert read_filter(path) == ids


@PROPERTY
@given(content=noise)
def test_malformed_filter_files_give_ids_or_a_named_error(folder, content):
    path = put(folder / "filter-malformed.txt", content)
    ids = outcome(lambda: read_filter(path), path)
    for clip_id in ids or set():
        assert clip_id and clip_id == clip_id.strip() and "\n" not in clip_id


# --- human_eval/ingest.py: read_responses and ingest ---------------------------------------


FORMATS = ("form", "sheet", "mturk", "mturk-flags", "labelstudio")


def response_file(rows: list[tuple[str, str, str]], form: str) -> tuple[str, bytes]:
    """(file name, content) of (rater, item, rating) rows in one of the exported formats."""
    if form == "form":  # what the HTML form downloads: the rater always quoted
        lines = [["rater", "item_id", "rating", "shown_at", "answered_at"]]
        lines += [[r, i, v, "2024-01-01T00:00:00Z", ""] for r, i, v in rows]
        return "form.csv", rows_csv(lines, csv.QUOTE_ALL)
    if form == "sheet":  # export's sheet.csv, filled in
        table = pd.DataFrame(
            {
                "item_id": [i for _, i, _ in rows],
                "image": [f"images/{i}.png" for _, i, _ in rows],
                "label": "a label",
                "rater": [r for r, _, _ in rows],
                "rating": [v for _, _, v in rows],
            }
        )
        return "sheet.csv", csv_bytes(table)
    if form == "mturk":
        lines = [["HITId", "WorkerId", "Input.item_id", "Input.label", "Answer.rating"]]
        lines += [["HIT1", r, i, "a label", v] for r, i, v in rows]
        return "mturk.csv", rows_csv(lines)
    if form == "mturk-flags":  # one radio button per value
        lines = [["WorkerId", "Input.item_id", *(f"Answer.r{n}" for n in range(1, 6))]]
        lines += [[r, i, *(str(str(n) == v).lower() for n in range(1, 6))] for r, i, v in rows]
        return "mturk-flags.csv", rows_csv(lines)
    tasks = [
        {
            "data": {"item_id": i, "image": f"images/{i}.png"},
            "annotations": [
                {"completed_by": r, "result": [{"type": "rating", "value": {"rating": int(v)}}]}
            ],
        }
        for r, i, v in rows
    ]
    return "labelstudio.json", json.dumps(tasks).encode("utf-8")


responses = st.lists(
    st.tuples(texts, texts, st.integers(1, 5).map(str)),
    min_size=1,
    max_size=8,
    unique_by=lambda row: (row[0], row[1]),
)


@PROPERTY
@given(rows=responses, form=st.sampled_from(FORMATS))
def test_responses_round_trip(folder, rows, form):
    name, content = response_file(rows, form)
    table = read_responses(put(folder / name, content))
    assert list(table.columns) == ["rater", "item", "rating"]
    assert list(table.itertuples(index=False, name=None)) == rows


def write_key(path: Path, items: list[str]) -> Path:
    """The key as export writes it (pandas, one row per item)."""
    key = pd.DataFrame(
        {
            "item_id": items,
            "label": [f"label of {item}" for item in items],
            "method": [f"method-{n % 2}" for n in range(len(items))],
            "run_dir": "runs/x",
            "sample_id": [f"s{n}" for n in range(len(items))],
            "kind": "rating",
        }
    )
    path.write_bytes(csv_bytes(key))
    return path


@st.composite
def study(draw) -> tuple[list[str], list[list[tuple[str, str, str]]], list[str]]:
    """Key items, and responses to them split over one to three files of any formats."""
    items = draw(st.lists(texts, min_size=1, max_size=6, unique=True))
    raters = draw(st.lists(texts, min_size=1, max_size=3, unique=True))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(raters), st.sampled_from(items)),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    rows = [(rater, item, str(draw(st.integers(1, 5)))) for rater, item in pairs]
    count = draw(st.integers(1, min(3, len(rows))))
    files = [rows[k::count] for k in range(count)]
    return items, files, [draw(st.sampled_from(FORMATS)) for _ in files]


def write_study(folder: Path, items, files, forms) -> tuple[Path, list[Path]]:
    paths = []
    for number, (rows, form) in enumerate(zip(files, forms, strict=True)):
        name, content = response_file(rows, form)
        paths.append(put(folder / f"{number}-{name}", content))
    return write_key(folder / "key.csv", items), paths


@PROPERTY
@given(setup=study())
def test_ingest_round_trip(folder, setup):
    items, files, forms = setup
    key, paths = write_study(folder, items, files, forms)
    result = ingest(paths, key, max_failed_checks=1000)
    assert result.dropped_raters == []
    assert list(result.ratings.columns) == list(COLUMNS)
    index = {item: n for n, item in enumerate(items)}
    expected = sorted(
        (rater, item, f"method-{index[item] % 2}", f"s{index[item]}", f"label of {item}", int(v))
        for rows in files
        for rater, item, v in rows
    )
    got = sorted(result.ratings.drop(columns="check").itertuples(index=False, name=None))
    assert got == expected


bad_ratings = st.one_of(
    st.sampled_from(["0", "6", "-1", "3.5", "x", "", " ", "NaN", "inf", "1e400", "٣", "²"]),
    st.integers().map(str),
    texts,
)


def corrupt(data, folder: Path, items, files, forms) -> tuple[Path, list[Path], Path]:
    """Write the study with one file broken in one way; returns the key, the response files
    and the file that was broken."""
    key, paths = write_study(folder, items, files, forms)
    target = data.draw(st.integers(0, len(paths) - 1))
    rows = list(files[target])
    how = data.draw(
        st.sampled_from(
            ["rating", "unknown-item", "duplicate", "columns", "mangle", "noise", "key"]
        )
    )
    if how == "key":
        put(key, data.draw(st.one_of(noise, st.just(b""), st.just(b"item_id,label\nx,y\n"))))
        return key, paths, key
    if how == "noise":
        put(paths[target], data.draw(noise))
        return key, paths, paths[target]
    if how == "rating":
        rows[0] = (*rows[0][:2], data.draw(bad_ratings))
    elif how == "unknown-item":
        rows[0] = (rows[0][0], rows[0][1] + "-not-in-the-key", rows[0][2])
    elif how == "duplicate":  # the same (rater, item) again, from this file or an earlier one
        earlier = [row for rows_ in files[: target + 1] for row in rows_]
        rows.append(data.draw(st.sampled_from(earlier)))
    _, content = response_file_lenient(rows, forms[target])
    if how == "columns":
        _, _, rest = content.partition(b"\n")
        content = (
            data.draw(st.sampled_from([b"rater,item,score", b"WorkerId,x", b""])) + b"\n" + rest
        )
    elif how == "mangle":
        content = mangle(content, data.draw)
    put(paths[target], content)
    return key, paths, paths[target]


def response_file_lenient(rows, form: str) -> tuple[str, bytes]:
    """Like `response_file`, but a Label Studio rating that is not an integer stays a string."""
    if form != "labelstudio":
        return response_file(rows, form)
    tasks = [
        {
            "data": {"item_id": i},
            "annotations": [
                {"completed_by": r, "result": [{"type": "rating", "value": {"rating": v}}]}
            ],
        }
        for r, i, v in rows
    ]
    return "labelstudio.json", json.dumps(tasks).encode("utf-8")


@PROPERTY
@given(setup=study(), data=st.data())
def test_malformed_responses_give_valid_ratings_or_an_error_naming_the_file(folder, setup, data):
    items, files, forms = setup
    key, paths, broken = corrupt(data, folder, items, files, forms)
    result = outcome(lambda: ingest(paths, key, max_failed_checks=1000), broken)
    if result is not None:
        ratings = result.ratings
        assert ratings.rating.isin([1, 2, 3, 4, 5]).all()
        assert set(ratings["item"]) <= set(items)
        assert not ratings.duplicated(["rater", "item"]).any()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["data", "item_id", "annotations", "result", "type", "value", "rating"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
)


@PROPERTY
@given(value=json_values, rating=st.one_of(json_values, st.just("rating")))
def test_malformed_label_studio_exports_give_rows_or_a_named_error(folder, value, rating):
    """Arbitrary JSON, and exports of the right shape holding arbitrary values."""
    shaped = [
        {
            "data": {"item_id": value},
            "annotations": [{"result": [{"type": rating, "value": {"rating": value}}]}],
        }
    ]
    for content in (value, shaped):
        path = put(folder / "ls-malformed.json", json.dumps(content).encode("utf-8"))
        table = outcome(lambda path=path: read_responses(path), path)
        if table is not None:
            assert list(table.columns) == ["rater", "item", "rating"]
            assert all(isinstance(v, str) for v in table.to_numpy().ravel())
