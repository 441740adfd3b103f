"""`audiobench report`: Table 1 of the paper from evaluated runs, as markdown, LaTeX or HTML.

Reports never compute a metric: they read each run's `metrics.json` (a run that was never
evaluated is an error naming it). Rows: the reference frames first, then text toplines, then
the audio-conditioned methods in the order given; the best value of each column among the
audio-conditioned methods is bold (highest for AIC, AIS, IIS; lowest for FID). Only AIC is
meaningful for the reference frames (they are their own reference), so its other cells are
dashes. A report with any `tiny`-profile run carries a warning that its numbers mean nothing.
"""

from __future__ import annotations

import base64
import html
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiobench.errors import AudiobenchError
from audiobench.profiles import RANDOM_PROFILES
from audiobench.store import RunDirectory, read_json

COLUMNS = (("aic", "AIC", True), ("fid", "FID", False), ("ais", "AIS", True), ("iis", "IIS", True))
STUDY_COLUMNS = (("sid", "SID", True),)  # shown only when a row has them (the speaker study)
KIND_ORDER = {"reference": 0, "text": 1, "audio": 2, "published": 3}
PER_SAMPLE = (("aic", "aic_agree"), ("ais", "ais_win"), ("iis", "iis_win"), ("sid", "sid_correct"))


def random_weights_warning(rows: list[Row]) -> str | None:
    """The warning for a report with a run of a random-weights profile (`tiny`,
    `paper-random`), whose numbers mean nothing; None when every run used real weights."""
    profile = next((row.profile for row in rows if row.profile in RANDOM_PROFILES), None)
    if profile is None:
        return None
    return (
        f"Made with the {profile} profile (seeded random weights): these numbers are "
        "meaningless and only show that the pipeline runs."
    )


FORMATS = ("markdown", "latex", "html")
UNLISTED = "(not in the class list)"


@dataclass(frozen=True)
class Row:
    """One evaluated run (or a published leaderboard row, run_dir None) as a table row."""

    run_dir: Path | None
    method: str
    name: str
    conditioning: str
    profile: str
    metrics: dict[str, Any]

    def cell(self, metric: str) -> dict[str, Any] | None:
        if self.conditioning == "reference" and metric != "aic":
            return None
        return self.metrics.get(metric)

    @property
    def n(self) -> int | None:
        counts = [result["n"] for result in self.metrics.values() if result.get("n") is not None]
        return max(counts) if counts else None


def load_rows(run_dirs: list[Path]) -> list[Row]:
    """Rows for evaluated runs, in Table 1 order (reference, text, then audio as given)."""
    from audiobench.registry import discover

    methods = discover()
    rows = []
    for run_dir in run_dirs:
        record = RunDirectory(run_dir).read_run()
        metrics_file = Path(run_dir) / "metrics.json"
        if record is None:
            raise AudiobenchError(f"{run_dir} is not a run directory (no run.json)")
        if not metrics_file.is_file():
            raise AudiobenchError(
                f"{run_dir} has no metrics.json; run `audiobench evaluate {run_dir}` first"
            )
        metrics = read_json(metrics_file)
        method = record["method"]
        method_class = methods[method].load() if method in methods else None
        rows.append(
            Row(
                run_dir=Path(run_dir),
                method=method,
                name=(method_class.table_name if method_class else None) or method,
                conditioning=method_class.conditioning if method_class else "audio",
                profile=metrics.get("profile", record.get("profile", "unknown")),
                metrics=metrics["metrics"],
            )
        )
    return sorted(rows, key=lambda row: KIND_ORDER.get(row.conditioning, 2))


def published_rows(board: dict[str, Any]) -> list[Row]:
    """The paper's rows of a leaderboard, to set beside the runs (never bold)."""
    return [
        Row(
            None,
            row["method"],
            f"{row['name']} (paper)",
            "published",
            "published",
            {
                metric: {**result, "n": result.get("n")}
                for metric, result in row["metrics"].items()
                if result.get("value") is not None
            },
        )
        for row in board["rows"]
        if row["source"] == "paper"
    ]


def table_columns(rows: list[Row]) -> tuple[tuple[str, str, bool], ...]:
    """Table 1's columns, then any study metric that some row has."""
    extra = tuple(c for c in STUDY_COLUMNS if any(c[0] in row.metrics for row in rows))
    return COLUMNS + extra


def best_values(rows: list[Row]) -> dict[str, float]:
    """Per column, the best value among the audio-conditioned rows."""
    best = {}
    for metric, _, higher in table_columns(rows):
        values = [
            row.cell(metric)["value"]
            for row in rows
            if row.conditioning == "audio" and row.cell(metric)
        ]
        if values:
            best[metric] = max(values) if higher else min(values)
    return best


def _cells(rows: list[Row], with_ci: bool, bold: str) -> list[list[str]]:
    """Text of every cell; `bold` is a format string such as '**{}**'."""
    best = best_values(rows)
    table = []
    for row in rows:
        cells = [row.name]
        for metric, _, _ in table_columns(rows):
            result = row.cell(metric)
            if result is None:
                cells.append("-")
                continue
            text = f"{result['value']:.2f}"
            if row.conditioning == "audio" and best.get(metric) == result["value"]:
                text = bold.format(text)
            if with_ci and result.get("ci95"):
                low, high = result["ci95"]
                text += f" [{low:.2f}, {high:.2f}]"
            cells.append(text)
        cells.append(str(row.n) if row.n is not None else "-")
        table.append(cells)
    return table


def _header(rows: list[Row], arrows: tuple[str, str]) -> list[str]:
    return [
        "Method",
        *(f"{label} {arrows[0] if up else arrows[1]}" for _, label, up in table_columns(rows)),
        "N",
    ]


def markdown(rows: list[Row], with_ci: bool = False) -> str:
    header = _header(rows, ("↑", "↓"))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows, with_ci, "**{}**")]
    text = "\n".join(lines) + "\n"
    warning = random_weights_warning(rows)
    return (f"> **Warning**: {warning}\n\n" + text) if warning else text


def latex(rows: list[Row], with_ci: bool = False) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    header = _header(rows, (r"$\uparrow$", r"$\downarrow$"))
    body = [
        [_latex_escape(cells[0]), *cells[1:]] for cells in _cells(rows, with_ci, r"\textbf{{{}}}")
    ]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(cells) + r" \\" for cells in body),
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Audio-to-image results on VGGSound (audiobench)."
        + (
            r" \textbf{Random weights: the numbers are meaningless.}"
            if random_weights_warning(rows)
            else ""
        )
        + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for character, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
    ):
        text = text.replace(character, escaped)
    return text


def html_report(
    rows: list[Row], with_ci: bool, figures: dict[str, bytes], tables: dict[str, Any] | None = None
) -> str:
    """One self-contained page: the table, every figure embedded as a PNG, extra tables."""
    header = "".join(f"<th>{html.escape(cell)}</th>" for cell in _header(rows, ("↑", "↓")))
    body = "".join(
        "<tr>" + "".join(f"<td>{_html_cell(cell)}</td>" for cell in cells) + "</tr>"
        for cells in _cells(rows, with_ci, "\0{}\0")
    )
    message = random_weights_warning(rows)
    warning = f'<p class="warning">{html.escape(message)}</p>' if message else ""
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, data in figures.items()
    )
    extra = "".join(
        f"<h2>{html.escape(title)}</h2>{frame.to_html(float_format=lambda v: f'{v:.1f}')}"
        for title, frame in (tables or {}).items()
        if frame is not None
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>audiobench report</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ccc;text-align:center}"
        ".warning{background:#fee;border:2px solid #c00;padding:8px;font-weight:bold}"
        "img{max-width:100%}</style></head><body><h1>audiobench: Table 1</h1>"
        f"{warning}<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
        f"{images}{extra}</body></html>\n"
    )


def _html_cell(text: str) -> str:
    parts = html.escape(text).split("\0")
    return "".join(f"<b>{part}</b>" if index % 2 else part for index, part in enumerate(parts))


def qualitative_grid(rows: list[Row], samples: int = 6) -> bytes:
    """Figure 3 of the paper: rows = methods, columns = the same samples, labels underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from PIL import Image

    runs = [row for row in rows if row.run_dir is not None]
    ordered = [row for row in runs if row.conditioning != "reference"]
    ordered += [row for row in runs if row.conditioning == "reference"]
    tables = {row.run_dir: pd.read_parquet(RunDirectory(row.run_dir).samples_file) for row in runs}
    common = sorted(set.intersection(*(set(t[t.status == "ok"].id) for t in tables.values())))
    chosen = common[:samples]
    if not chosen:
        raise AudiobenchError("the runs share no successfully generated sample to show")
    labels = tables[runs[0].run_dir].set_index("id").loc[chosen, "label"].tolist()
    figure, axes = plt.subplots(
        len(ordered), len(chosen), squeeze=False, figsize=(1.8 * len(chosen), 1.9 * len(ordered))
    )
    for r, row in enumerate(ordered):
        for c, sample_id in enumerate(chosen):
            axis = axes[r][c]
            with Image.open(RunDirectory(row.run_dir).image_path(sample_id)) as image:
                axis.imshow(image.convert("RGB"))
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(row.name, fontsize=8)
            if r == len(ordered) - 1:
                axis.set_xlabel(labels[c], fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def per_class(rows: list[Row], classes: dict[str, str] | None = None) -> dict[str, Any]:
    """Per-sample values averaged by label and, with a class list, by supercategory.

    Returns {"class": DataFrame, "supercategory": DataFrame or None} with one column per
    (method, metric), values in percent, from the per-sample columns `evaluate` wrote.
    """
    import pandas as pd

    frames = []
    for row in rows:
        if row.run_dir is None:
            continue
        table = pd.read_parquet(RunDirectory(row.run_dir).samples_file)
        for metric, column in PER_SAMPLE:
            if column in table.columns:
                values = table[["label", column]].dropna().rename(columns={column: "value"})
                frames.append(values.assign(method=row.name, metric=metric.upper()))
    if not frames:
        raise AudiobenchError("no per-sample values: evaluate the runs first")
    values = pd.concat(frames)
    values["value"] = 100 * values["value"].astype(float)
    by_class = values.pivot_table("value", "label", ["metric", "method"], aggfunc="mean")
    by_group = None
    if classes is not None:
        unknown = sorted(set(values["label"]) - set(classes))
        if unknown:
            warnings.warn(
                f"{len(unknown)} labels are not in the class list ({', '.join(unknown[:3])}"
                f"{', ...' if len(unknown) > 3 else ''}): grouped as {UNLISTED}",
                stacklevel=2,
            )
        values["supercategory"] = values["label"].map(classes).fillna(UNLISTED)
        by_group = values.pivot_table(
            "value", "supercategory", ["metric", "method"], aggfunc="mean"
        )
    return {"class": by_class, "supercategory": by_group}


def spectrogram_pairs(row: Row, samples: int = 4) -> bytes:
    """Figure 1 of the paper: each audio window's log-mel spectrogram beside its image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import torch
    import torchaudio
    from PIL import Image

    from audiobench.data import SAMPLE_RATE, load_index

    record = RunDirectory(row.run_dir).read_run()
    table = pd.read_parquet(RunDirectory(row.run_dir).samples_file)
    index = {s.id: s for s in load_index(record["dataset"], record["split"])}
    chosen = [i for i in table[table.status == "ok"].id if i in index][:samples]
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=64)
    figure, axes = plt.subplots(len(chosen), 2, squeeze=False, figsize=(6, 2.2 * len(chosen)))
    for r, sample_id in enumerate(chosen):
        sample = index[sample_id]
        power = mel(torch.from_numpy(sample.read_audio())).numpy()
        axes[r][0].imshow(np.log(power + 1e-6), origin="lower", aspect="auto", cmap="magma")
        axes[r][0].set_ylabel(sample.label, fontsize=8)
        with Image.open(RunDirectory(row.run_dir).image_path(sample_id)) as image:
            axes[r][1].imshow(image.convert("RGB"))
        for axis in axes[r]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[0][0].set_title("audio (log-mel)", fontsize=9)
    axes[0][1].set_title(row.name, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
