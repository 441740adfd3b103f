"""The versioned VGGSound leaderboard: published rows beside audiobench runs.

`leaderboards/vggsound.json` (schema version 1, shipped as package data) holds `rows`, each:
`method` (registry name), `name` (row label), `source` ("paper" or "audiobench"), `profile`
(null for published rows), `config` (the method's options; for published rows, a citation),
`suite_version`, `date`, and `metrics`: {metric name -> {value, n, ci95}} with nulls where
unknown; audiobench rows also carry `digest`, the sha256 of the run's results (`results_digest`).
Every metric a row brings is kept, whether or not its plugin is installed here. `render` writes it
as markdown: the paper's Table 1 columns, then every other metric some row has, and for each
audiobench row its difference from the published row of the same method.

`add` is idempotent: a run whose digest is already on the board is not added again. A run whose
results changed (a re-run or re-evaluation with other numbers, images, data or options) gets a
new row beside the old one, as lm-evaluation-harness keeps every results file and a hosted
leaderboard lists each model revision as its own entry: a board is a record, so `add` never
overwrites or drops a row; deleting a stale one is an edit of the JSON (the board lives in git).

The format is written down as a JSON Schema (Draft 2020-12) shipped in the package,
`audiobench/schemas/leaderboard.schema.json`, for other tools to check boards with. `validate`
enforces the same rules by hand, so audiobench needs no schema library; a test holds the two to
agreement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from audiobench import __version__
from audiobench.errors import AudiobenchError
from audiobench.escaping import markdown_cell
from audiobench.metrics.plugin import default_metrics, discover_metrics, label_of, ordered
from audiobench.profiles import RANDOM_PROFILES
from audiobench.report import format_number, load_rows
from audiobench.store import atomic_write_bytes, atomic_write_json, read_inside, read_json

SCHEMA_VERSION = 1


def packaged_board() -> Path:
    """The VGGSound board shipped inside the package (`leaderboards/vggsound.json` in the
    repository), so `leaderboard render` works from any working directory."""
    return Path(str(resources.files("audiobench.leaderboards").joinpath("vggsound.json")))


SOURCES = ("paper", "audiobench")
PAPER_TABLE = Path(__file__).parent / "paper_table1.json"  # the published numbers, as data


def paper_rows() -> list[dict[str, Any]]:
    """The paper's Table 1 rows (null where the paper gives no value), each named as its
    method names its rows (`Method.table_name`), so a report and the board agree."""
    table = read_json(PAPER_TABLE)
    return [
        {
            "method": row["method"],
            "name": method_table_name(row["method"]),
            "source": "paper",
            "profile": None,
            "config": {"citation": table["citation"]},
            "suite_version": None,
            "date": table["date"],
            "metrics": {
                metric: {"value": row["metrics"].get(metric), "n": None, "ci95": None}
                for metric in default_metrics()
            },
        }
        for row in table["rows"]
    ]


def method_table_name(method: str) -> str:
    """The row label a registered method declares, or its registry name."""
    from audiobench.registry import discover

    info = discover().get(method)
    return (info.load().table_name if info is not None else None) or method


def new_board() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "dataset": "VGGSound test", "rows": paper_rows()}


def validate(board: Any, path: Path) -> dict[str, Any]:
    """The board if it follows the schema, else a one-line error naming the file and the bad
    entries: a wrong type would otherwise surface later as a crash in `render` or `report`."""
    problems = _problems(board)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS])
        more = len(problems) - MAX_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        raise AudiobenchError(f"{path} is not a valid leaderboard: {shown}{tail}")
    return board


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    """JSON Schema's non-negative integer: a number with no fractional part (so 4.0 counts)."""
    return _is_number(value) and value >= 0 and float(value).is_integer()


def _is_interval(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# field -> (check, what it must be); these mirror schemas/leaderboard.schema.json, which
# tests/test_leaderboard_schema.py holds them to
Fields = dict[str, tuple[Callable[[Any], bool], str]]
BOARD_FIELDS: Fields = {
    "schema_version": (lambda v: _is_number(v) and v == SCHEMA_VERSION, str(SCHEMA_VERSION)),
    "dataset": (_is_string, "a string"),
    "rows": (lambda v: isinstance(v, list), "a list"),
}
ROW_FIELDS: Fields = {
    "method": (_is_string, "a string"),
    "name": (_is_string, "a string"),
    "source": (lambda v: v in SOURCES, " or ".join(SOURCES)),
    "profile": (_or_null(_is_string), "a string or null"),
    "config": (lambda v: isinstance(v, dict), "an object"),
    "suite_version": (_or_null(_is_string), "a string or null"),
    "date": (_is_string, "a string"),
    "metrics": (lambda v: isinstance(v, dict), "an object of metric results"),
    "digest": (_is_string, "a string"),
}
METRIC_FIELDS: Fields = {
    "value": (_or_null(_is_number), "a number or null"),
    "n": (_or_null(_is_count), "a whole number >= 0 or null"),
    "ci95": (_or_null(_is_interval), "[low, high] numbers or null"),
}
REQUIRED_BOARD_FIELDS = ("schema_version", "rows")
REQUIRED_ROW_FIELDS = ("method", "name", "source", "date", "metrics")
REQUIRED_METRIC_FIELDS = ("value",)
MAX_PROBLEMS = 5


def _problems(board: Any) -> list[str]:
    """Every way the board breaks the schema, each naming its entry (`rows[2].metrics["aic"]`)."""
    problems = _object_problems(board, "", BOARD_FIELDS, REQUIRED_BOARD_FIELDS)
    rows = board.get("rows") if isinstance(board, dict) else None
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        where = f"rows[{index}]"
        problems += _object_problems(row, where, ROW_FIELDS, REQUIRED_ROW_FIELDS)
        metrics = row.get("metrics") if isinstance(row, dict) else None
        for metric, result in metrics.items() if isinstance(metrics, dict) else ():
            entry = f"{where}.metrics[{json.dumps(metric)}]"
            problems += _object_problems(result, entry, METRIC_FIELDS, REQUIRED_METRIC_FIELDS)
    return problems


def _object_problems(
    value: Any, where: str, fields: Fields, required: tuple[str, ...]
) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where or 'the document'} must be an object, not {_shown(value)}"]
    prefix = f"{where}." if where else ""
    missing = [key for key in required if key not in value]
    problems = [f"{where or 'the document'} lacks {', '.join(missing)}"] if missing else []
    return problems + [
        f"{prefix}{key} must be {wanted}, not {_shown(value[key])}"
        for key, (check, wanted) in fields.items()
        if key in value and not check(value[key])
    ]


def _shown(value: Any) -> str:
    """A bad value as JSON on one line, cut short: the error names it, never dumps it."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load(path: Path) -> dict[str, Any]:
    return validate(read_json(path), path) if Path(path).exists() else new_board()


@dataclass
class Addition:
    """What `add_runs` did: the board as it now is, and a line for each run it did not simply
    append (already on the board, or added beside other rows of the same name)."""

    board: dict[str, Any]
    added: int = 0
    notes: list[str] = field(default_factory=list)


def add_runs(path: Path, run_dirs: list[Path], force: bool = False) -> Addition:
    """Add evaluated runs as audiobench rows (random-weights runs only with `force`).

    A run whose digest a row already has is skipped, so adding a run twice (or twice in one call)
    leaves one row and the file untouched; one with new results is a new row (module docstring).
    """
    addition = Addition(load(path))
    rows = addition.board["rows"]
    for row in load_rows(run_dirs):
        if row.profile in RANDOM_PROFILES and not force:
            raise AudiobenchError(
                f"{row.run_dir} was made with the {row.profile} profile (random weights): its "
                "numbers are meaningless and do not belong on a leaderboard (--force to add it "
                "anyway)"
            )
        assert row.run_dir is not None  # load_rows makes every row from a run
        record, metrics = (_run_file(row.run_dir, name) for name in ("run.json", "metrics.json"))
        digest = results_digest(record, metrics)
        same = [old for old in rows if old.get("digest") == digest]
        if same:
            addition.notes.append(
                f"{row.run_dir}: already on the board (the {same[0]['name']!r} row of "
                f"{same[0]['date']}, digest {digest[:12]}); not added again"
            )
            continue
        namesakes = [
            old for old in rows if old["source"] == "audiobench" and old["name"] == row.name
        ]
        if namesakes:
            addition.notes.append(
                f"{row.run_dir}: results differ from the {len(namesakes)} {row.name!r} row(s) "
                f"already on the board; added beside them (delete a stale row from {path})"
            )
        rows.append(
            {
                "method": row.method,
                "name": row.name,
                "source": "audiobench",
                "profile": row.profile,
                "config": _row_config(record),
                "suite_version": __version__,
                "date": datetime.now(timezone.utc).date().isoformat(),
                "metrics": _row_metrics(metrics),
                "digest": digest,
            }
        )
        addition.added += 1
    if addition.added:
        atomic_write_json(path, addition.board)
    return addition


def results_digest(record: dict[str, Any], metrics: dict[str, Any]) -> str:
    """sha256 of what a run's results are, from its run.json and metrics.json: what made them
    (method, profile, options, seed, split, checkpoint), what they were measured on (the dataset's
    index and inputs hashes, the digest of the images the metrics saw, the metric models' hashes)
    and the numbers (every metric's value, N and interval).

    Not when, where or by which audiobench: timestamps, paths, hosts and versions are left out, so
    the same results give the same digest from a copied run folder, after an evaluation that
    reproduces them, or through a newer audiobench; any other change gives another."""
    dataset = metrics.get("dataset") or record
    basis = {
        "config": _row_config(record),
        "profile": {"run": record.get("profile"), "evaluation": metrics.get("profile")},
        "dataset": {key: dataset.get(key) for key in ("dataset_sha256", "inputs_sha256")},
        "images": metrics.get("images") or record.get("images"),
        "metric_models": sorted(
            [str(model.get("role")), str(model.get("sha256"))]
            for model in metrics.get("models", [])
        ),
        "metrics": _row_metrics(metrics),
        "method": record.get("method"),
    }
    canonical = json.dumps(basis, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _run_file(run_dir: Path, name: str) -> dict[str, Any]:
    """run.json or metrics.json, read through no link out of the run: a board is published, and
    run folders come from strangers."""
    path = Path(run_dir) / name
    try:
        return json.loads(read_inside(path, Path(run_dir)))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not valid JSON: {error}") from error


def _row_config(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of run.json a leaderboard row keeps."""
    return {key: record.get(key) for key in ("method_config", "seed", "split", "checkpoint")}


def _row_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        metric: {key: result.get(key) for key in ("value", "n", "ci95")}
        for metric, result in metrics["metrics"].items()
    }


def render(board: dict[str, Any], source: Path | None = None) -> str:
    """Markdown: every row, and each audiobench row's difference from the paper's, under a note
    naming the file the board was read from (`source`; None: the packaged board) by its name
    alone, so the markdown does not depend on where it was made."""
    published = {row["method"]: row for row in board["rows"] if row["source"] == "paper"}
    metrics = board_metrics(board)
    header = [
        "Method",
        "Source",
        "Profile",
        *(f"{label_of(metric)} {'↑' if _higher(board, metric) else '↓'}" for metric in metrics),
        "N",
        "Δ vs paper",
    ]
    lines = ["| " + " | ".join(markdown_cell(c) for c in header) + " |"]
    lines.append("|" + "---|" * len(header))
    for row in board["rows"]:
        values = [_value(row, metric) for metric in metrics]
        counts = [m.get("n") for m in row["metrics"].values() if m.get("n") is not None]
        difference = _difference(row, published.get(row["method"]), metrics)
        lines.append(
            "| "
            + " | ".join(
                [
                    markdown_cell(row["name"]),
                    markdown_cell(row["source"]),
                    markdown_cell(row.get("profile") or "-"),
                    *values,
                    str(max(counts)) if counts else "-",
                    difference,
                ]
            )
            + " |"
        )
    name = markdown_cell((source or packaged_board()).name)
    note = (
        f"Generated by `audiobench leaderboard render` from {name}; the paper's rows are its "
        "published Table 1.\n\n"
    )
    return note + "\n".join(lines) + "\n"


def board_metrics(board: dict[str, Any]) -> list[str]:
    """The paper's Table 1 metrics, then every other metric some row has."""
    extra = {name for row in board["rows"] for name in row["metrics"]} - set(default_metrics())
    return [*default_metrics(), *ordered(sorted(extra))]


def _higher(board: dict[str, Any], metric: str) -> bool:
    plugin = discover_metrics().get(metric)
    return plugin.higher_is_better if plugin else True


def _value(row: dict, metric: str) -> str:
    value = row["metrics"].get(metric, {}).get("value")
    plugin = discover_metrics().get(metric)
    return "-" if value is None else format_number(value, plugin.decimals if plugin else 2)


def _difference(row: dict, paper: dict | None, metrics: list[str]) -> str:
    if row["source"] != "audiobench" or paper is None:
        return "-"
    parts = []
    for metric in metrics:
        label = markdown_cell(label_of(metric))
        ours = row["metrics"].get(metric, {}).get("value")
        theirs = paper["metrics"].get(metric, {}).get("value")
        if ours is not None and theirs is not None:
            parts.append(f"{label} {format_number(ours - theirs, signed=True)}")
    return ", ".join(parts) or "-"


def write_markdown(board: dict[str, Any], out: Path, source: Path | None = None) -> None:
    atomic_write_bytes(out, render(board, source).encode("utf-8"))
