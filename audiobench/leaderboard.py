"""The versioned VGGSound leaderboard: published rows beside audiobench runs.

`leaderboards/vggsound.json` (schema version 1) holds `rows`, each:
`method` (registry name), `name` (row label), `source` ("paper" or "audiobench"), `profile`
(null for published rows), `config` (the method's options; for published rows, a citation),
`suite_version`, `date`, and `metrics`: {aic, fid, ais, iis} -> {value, n, ci95} with nulls
where unknown. `render` writes it as markdown with, for each audiobench row, its difference from
the published row of the same method.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audiobench import __version__
from audiobench.errors import AudiobenchError
from audiobench.profiles import RANDOM_PROFILES
from audiobench.report import COLUMNS, load_rows
from audiobench.store import atomic_write_bytes, atomic_write_json, read_json

SCHEMA_VERSION = 1
DEFAULT_FILE = Path("leaderboards/vggsound.json")
SOURCES = ("paper", "audiobench")
PAPER = "Yariv et al., AudioToken, Interspeech 2023, Table 1 (VGGSound test set)"
# Table 1 of the paper: AIC, FID, AIS, IIS (None where the paper gives no value).
PAPER_TABLE = {
    "reference": ("Reference (real frames)", (54.66, None, None, None)),
    "sd-text": ("SD (text labels)", (71.28, 52.85, None, None)),
    "wav2clip-vqgan": ("Wav2Clip", (29.32, 99.89, 47.76, 51.11)),
    "imagebind-unclip": ("ImageBind", (39.15, 67.42, 67.48, 75.50)),
    "audiotoken-cl": ("AudioToken with CL", (48.01, 66.08, 62.28, 76.40)),
    "audiotoken": ("AudioToken", (45.48, 56.65, 68.23, 76.66)),
}


def paper_rows() -> list[dict[str, Any]]:
    return [
        {
            "method": method,
            "name": name,
            "source": "paper",
            "profile": None,
            "config": {"citation": PAPER},
            "suite_version": None,
            "date": "2023-05-22",
            "metrics": {
                metric: {"value": value, "n": None, "ci95": None}
                for (metric, _, _), value in zip(COLUMNS, values, strict=True)
            },
        }
        for method, (name, values) in PAPER_TABLE.items()
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
        elif set(row["metrics"]) - {metric for metric, _, _ in COLUMNS}:
            problems.append(f"row {index} has unknown metrics")
    if problems:
        raise AudiobenchError(f"{path} is not a valid leaderboard: {'; '.join(problems)}")
    return board


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
                    metric: {key: row.metrics[metric][key] for key in ("value", "n", "ci95")}
                    for metric, _, _ in COLUMNS
                    if metric in row.metrics
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
    header = [
        "Method",
        "Source",
        "Profile",
        *(f"{label} {'↑' if up else '↓'}" for _, label, up in COLUMNS),
        "N",
        "Δ vs paper",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board["rows"]:
        values = [_value(row, metric) for metric, _, _ in COLUMNS]
        counts = [m.get("n") for m in row["metrics"].values() if m.get("n") is not None]
        difference = _difference(row, published.get(row["method"]))
        lines.append(
            "| "
            + " | ".join(
                [
                    row["name"],
                    row["source"],
                    row.get("profile") or "-",
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


def _value(row: dict, metric: str) -> str:
    value = row["metrics"].get(metric, {}).get("value")
    return "-" if value is None else f"{value:.2f}"


def _difference(row: dict, paper: dict | None) -> str:
    if row["source"] != "audiobench" or paper is None:
        return "-"
    parts = []
    for metric, label, _ in COLUMNS:
        ours = row["metrics"].get(metric, {}).get("value")
        theirs = paper["metrics"].get(metric, {}).get("value")
        if ours is not None and theirs is not None:
            parts.append(f"{label} {ours - theirs:+.2f}")
    return ", ".join(parts) or "-"


def write_markdown(board: dict[str, Any], out: Path) -> None:
    atomic_write_bytes(out, render(board).encode("utf-8"))
