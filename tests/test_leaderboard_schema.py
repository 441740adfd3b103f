"""The shipped JSON Schema and `leaderboard.validate` agree on every board (issue 17, item 10).

audiobench enforces the format by hand (no schema library is a dependency); the schema is for
other tools. A small validator of the JSON Schema keywords the file uses, written here, must
accept and refuse exactly the documents `validate` accepts and refuses: hand-picked ones, and
hypothesis' mutations of a good board at every place in it.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiobench import leaderboard
from audiobench.errors import AudiobenchError
from tests.conftest import REPO

SCHEMA_PATH = "schemas/leaderboard.schema.json"
SCHEMA = json.loads((resources.files("audiobench") / SCHEMA_PATH).read_text())
ANNOTATIONS = {"$schema", "title", "description", "$defs"}


def is_type(instance: Any, name: str) -> bool:
    """JSON Schema's types: booleans are not numbers, an integer is a number without fraction."""
    number = isinstance(instance, int | float) and not isinstance(instance, bool)
    return {
        "null": instance is None,
        "boolean": isinstance(instance, bool),
        "object": isinstance(instance, dict),
        "array": isinstance(instance, list),
        "string": isinstance(instance, str),
        "number": number,
        "integer": number and float(instance).is_integer(),
    }[name]


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (1 == 1.0, but true is not 1), for const and enum."""
    if is_type(a, "number") and is_type(b, "number"):
        return a == b
    return type(a) is type(b) and a == b


def conforms(instance: Any, schema: dict[str, Any]) -> bool:
    """Whether `instance` is valid under `schema`; fails on a keyword it does not implement, so
    the schema cannot quietly use one this check would ignore."""
    unknown = set(schema) - ANNOTATIONS - set(KEYWORDS)
    assert not unknown, f"keywords not implemented here: {unknown}"
    return all(KEYWORDS[key](instance, value) for key, value in schema.items() if key in KEYWORDS)


def resolve(reference: str) -> dict[str, Any]:
    assert reference.startswith("#/$defs/")
    return SCHEMA["$defs"][reference.removeprefix("#/$defs/")]


def _properties(instance: Any, properties: dict) -> bool:
    if not isinstance(instance, dict):
        return True
    return all(conforms(instance[k], s) for k, s in properties.items() if k in instance)


def _additional(instance: Any, schema: dict) -> bool:
    return not isinstance(instance, dict) or all(conforms(v, schema) for v in instance.values())


KEYWORDS = {
    "type": lambda i, t: any(is_type(i, name) for name in ([t] if isinstance(t, str) else t)),
    "const": json_equal,
    "enum": lambda i, options: any(json_equal(i, option) for option in options),
    "required": lambda i, keys: not isinstance(i, dict) or all(key in i for key in keys),
    "properties": _properties,
    "additionalProperties": _additional,
    "items": lambda i, s: not isinstance(i, list) or all(conforms(item, s) for item in i),
    "minItems": lambda i, n: not isinstance(i, list) or len(i) >= n,
    "maxItems": lambda i, n: not isinstance(i, list) or len(i) <= n,
    "minimum": lambda i, n: not is_type(i, "number") or i >= n,
    "$ref": lambda i, reference: conforms(i, resolve(reference)),
}


def accepted_by_validate(board: Any) -> bool:
    try:
        leaderboard.validate(board, REPO / "board.json")
    except AudiobenchError:
        return False
    return True


def audiobench_row() -> dict[str, Any]:
    result = {"value": 45.5, "n": 4, "ci95": [44.5, 46.5]}
    return {
        "method": "audiotoken",
        "name": "AudioToken",
        "source": "audiobench",
        "profile": "paper",
        "config": {"method_config": {}, "seed": 0, "split": "test", "checkpoint": None},
        "suite_version": "0.1.0",
        "date": "2024-01-01",
        "metrics": {"aic": result, "fid": {**result, "ci95": None}},
    }


def good_board() -> dict[str, Any]:
    board = leaderboard.new_board()
    board["rows"] = [*board["rows"][:2], audiobench_row()]
    return board


def changed(change) -> dict[str, Any]:
    board = good_board()
    change(board)
    return board


def metric(value: Any):
    return lambda board: board["rows"][2]["metrics"].__setitem__("aic", value)


def row_field(key: str, value: Any):
    return lambda board: board["rows"][2].__setitem__(key, value)


GOOD = [
    good_board(),
    leaderboard.new_board(),
    json.loads((REPO / "leaderboards" / "vggsound.json").read_text()),
    changed(lambda b: b.__setitem__("rows", [])),
    changed(lambda b: b.pop("dataset")),
    changed(lambda b: b.__setitem__("schema_version", 1.0)),
    changed(lambda b: b["rows"][2].__setitem__("notes", "extra fields are kept")),
    changed(lambda b: [b["rows"][2].pop(key) for key in ("profile", "config", "suite_version")]),
    changed(row_field("metrics", {})),
    changed(metric({"value": None})),
    changed(metric({"value": 1, "n": 4.0, "ci95": [0, 2.5]})),
    changed(metric({"value": -3.5, "n": 0, "extra": "kept"})),
]
BAD = [
    [],
    None,
    "leaderboard",
    changed(lambda b: b.pop("schema_version")),
    changed(lambda b: b.__setitem__("schema_version", 2)),
    changed(lambda b: b.__setitem__("schema_version", "1")),
    changed(lambda b: b.__setitem__("schema_version", True)),
    changed(lambda b: b.pop("rows")),
    changed(lambda b: b.__setitem__("rows", {"0": audiobench_row()})),
    changed(lambda b: b.__setitem__("dataset", 5)),
    changed(lambda b: b["rows"].append("a row")),
    changed(lambda b: b["rows"][2].pop("name")),
    changed(lambda b: b["rows"][2].pop("date")),
    changed(row_field("method", 3)),
    changed(row_field("source", "arxiv")),
    changed(row_field("profile", 5)),
    changed(row_field("config", "x")),
    changed(row_field("suite_version", 1)),
    changed(row_field("date", None)),
    changed(row_field("metrics", [])),
    changed(metric("52.1")),
    changed(metric(52.1)),
    changed(metric([52.1])),
    changed(metric(None)),
    changed(metric({"value": "52.1"})),
    changed(metric({"value": True})),
    changed(metric({"n": 4})),
    changed(metric({"value": 1, "n": -1})),
    changed(metric({"value": 1, "n": 2.5})),
    changed(metric({"value": 1, "n": "4"})),
    changed(metric({"value": 1, "ci95": [1]})),
    changed(metric({"value": 1, "ci95": [1, "2"]})),
    changed(metric({"value": 1, "ci95": [1, 2, 3]})),
    changed(metric({"value": 1, "ci95": "[1, 2]"})),
]


@pytest.mark.parametrize("board", GOOD)
def test_good_boards_pass_both(board):
    assert conforms(board, SCHEMA) and accepted_by_validate(board)


@pytest.mark.parametrize("board", BAD)
def test_bad_boards_fail_both(board):
    assert not conforms(board, SCHEMA) and not accepted_by_validate(board)


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every key path in a document, and a new key in each object."""
    if isinstance(value, dict):
        inner = [p for key, child in value.items() for p in places(child, (*path, key))]
        return [path, (*path, "new-key"), *inner]
    if isinstance(value, list):
        return [path, *(p for k, child in enumerate(value) for p in places(child, (*path, k)))]
    return [path]


PLACES = [place for place in places(good_board()) if place]
DELETE = object()
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([1.0, 2.5, -0.5])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["paper", "audiobench", "", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["value", "n", "ci95", "x"]), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PLACES), st.one_of(st.just(DELETE), JSON_VALUES))
def test_schema_and_validate_agree_on_every_mutation(place, value):
    board = copy.deepcopy(good_board())
    *parents, last = place
    container = board
    for key in parents:
        container = container[key]
    if value is DELETE:
        if isinstance(container, dict):
            container.pop(last, None)
        else:
            del container[last]
    else:
        container[last] = value
    assert conforms(board, SCHEMA) == accepted_by_validate(board)


def test_the_schema_ships_with_the_package():
    """Declared as package data, as paper_table1.json is, so an installed audiobench has it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["audiobench"]
    assert any(fnmatch.fnmatch(SCHEMA_PATH, pattern) for pattern in patterns)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_paper_rows_are_named_by_their_registered_methods():
    """The published rows carry no names of their own: each is the table_name its method
    declares, so renaming a method's row renames it in reports and on the board alike."""
    from audiobench.registry import get_method

    rows = leaderboard.paper_rows()
    assert len(rows) == 6
    for row in rows:
        declared = get_method(row["method"]).table_name
        assert declared and row["name"] == declared
