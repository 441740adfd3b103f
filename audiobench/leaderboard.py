"""The versioned VGGSound leaderboard: published rows beside audiobench runs.

`leaderboards/vggsound.json` (schema version 1) holds `rows`, each:
`method` (registry name), `name` (row label), `source` ("paper" or "audiobench"), `profile`
(null for published rows), `config` (the method's options; for published rows, a citation),
`suite_version`, `date`, and `metrics`: {metric name -> {value, n, ci95}} with nulls where
unknown. Every metric a row brings is kept, whether or not its plugin is installed here. `render`
writes it as markdown: the paper's Table 1 columns, then every other metric some row has, and
for each audiobench row its difference from the published row of the same method.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audiobench import __version__
from audiobench.errors import AudiobenchError
from audiobench.metrics.plugin import default_metrics, discover_metrics, label_of, ordered
from audiobench.profiles import RANDOM_PROFILES
from audiobench.report import load_rows, markdown_escape
from audiobench.store import atomic_write_bytes, atomic_write_json, read_json

SCHEMA_VERSION = 1
DEFAULT_FILE = Path("leaderboards/vggsound.json")
SOURCES = ("paper", "audiobench")
PAPER_TABLE = Path(__file__).parent / "paper_table1.json"  # the published numbers, as data


def paper_rows() -> list[dict[str, Any]]:
    """The paper's Table 1 rows (null where the paper gives no value)."""
    table = read_json(PAPER_TABLE)
    return [
        {
            "method": row["method"],
            "name": row["name"],
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


def new_board() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "dataset": "VGGSound test", "rows": paper_rows()}


def validate(board: Any, path: Path) -> dict[str, Any]:
    """The board if it follows the schema, else an error naming the file and the problem."""
    problems = []
    if not isinstance(board, dict) or board.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version must be {SCHEMA_VERSION}")
    rows = board.get("rows") if isinstance(board, dict) else None
    if not isinstance(rows, list):
        problems.append("rows must be a list")
        rows = []
    for index, row in enumerate(rows):
        missing = [
            key
            for key in ("method", "name", "source", "metrics", "date")
            if not isinstance(row, dict) or key not in row
        ]
        if missing:
            problems.append(f"row {index} lacks {', '.join(missing)}")
        elif row["source"] not in SOURCES:
            problems.append(f"row {index} has source {row['source']!r}, not paper or audiobench")
        elif not isinstance(row["metrics"], dict) or not all(
            isinstance(result, dict) and _is_number_or_null(result.get("value"))
            for result in row["metrics"].values()
        ):
            problems.append(f"row {index}: metrics must map names to {{value: number or null}}")
    if problems:
        raise AudiobenchError(f"{path} is not a valid leaderboard: {'; '.join(problems)}")
    return board


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def load(path: Path) -> dict[str, Any]:
    return validate(read_json(path), path) if Path(path).exists() else new_board()


def add_runs(path: Path, run_dirs: list[Path], force: bool = False) -> dict[str, Any]:
    """Add evaluated runs as audiobench rows (random-weights runs only with `force`)."""
    board = load(path)
    for row in load_rows(run_dirs):
        if row.profile in RANDOM_PROFILES and not force:
            raise AudiobenchError(
                f"{row.run_dir} was made with the {row.profile} profile (random weights): its "
                "numbers are meaningless and do not belong on a leaderboard (--force to add it "
                "anyway)"
            )
        record = RunRecord(row.run_dir)
        board["rows"].append(
            {
                "method": row.method,
                "name": row.name,
                "source": "audiobench",
                "profile": row.profile,
                "config": record.config,
                "suite_version": __version__,
                "date": datetime.now(timezone.utc).date().isoformat(),
                "metrics": {
                    metric: {key: result.get(key) for key in ("value", "n", "ci95")}
                    for metric, result in row.metrics.items()
                },
            }
        )
    atomic_write_json(path, board)
    return board


class RunRecord:
    """The parts of run.json a leaderboard row keeps."""

    def __init__(self, run_dir: Path) -> None:
        record = read_json(Path(run_dir) / "run.json")
        self.config = {
            "method_config": record.get("method_config"),
            "seed": record.get("seed"),
            "split": record.get("split"),
            "checkpoint": record.get("checkpoint"),
        }


def render(board: dict[str, Any]) -> str:
    """Markdown: every row, and each audiobench row's difference from the paper's."""
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
    lines = ["| " + " | ".join(markdown_escape(c) for c in header) + " |"]
    lines.append("|" + "---|" * len(header))
    for row in board["rows"]:
        values = [_value(row, metric) for metric in metrics]
        counts = [m.get("n") for m in row["metrics"].values() if m.get("n") is not None]
        difference = _difference(row, published.get(row["method"]), metrics)
        lines.append(
            "| "
            + " | ".join(
                [
                    markdown_escape(row["name"]),
                    markdown_escape(row["source"]),
                    markdown_escape(row.get("profile") or "-"),
                    *values,
                    str(max(counts)) if counts else "-",
                    difference,
                ]
            )
            + " |"
        )
    note = (
        "Generated by `audiobench leaderboard render` from vggsound.json; the paper's rows "
        "are its published Table 1.\n\n"
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
    return "-" if value is None else f"{value:.{plugin.decimals if plugin else 2}f}"


def _difference(row: dict, paper: dict | None, metrics: list[str]) -> str:
    if row["source"] != "audiobench" or paper is None:
        return "-"
    parts = []
    for metric in metrics:
        label = markdown_escape(label_of(metric))
        ours = row["metrics"].get(metric, {}).get("value")
        theirs = paper["metrics"].get(metric, {}).get("value")
        if ours is not None and theirs is not None:
            parts.append(f"{label} {ours - theirs:+.2f}")
    return ", ".join(parts) or "-"


def write_markdown(board: dict[str, Any], out: Path) -> None:
    atomic_write_bytes(out, render(board).encode("utf-8"))
