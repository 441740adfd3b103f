"""`audiobench report`: Table 1 of the paper from evaluated runs, as markdown, LaTeX or HTML.

Reports never compute a metric: they read each run's `metrics.json` (a run that was never
evaluated is an error naming it). Columns: the paper's Table 1 metrics by default, or those
asked for; what a column is called, which way is better and how many decimals it shows come
from the metric plugins. Rows: the reference frames first, then text toplines, then the
audio-conditioned methods in the order given; the best value of each column among the
audio-conditioned methods is bold. Metrics that compare with the reference frames mean nothing
for the frames themselves, so those cells of the reference row are dashes. A report with any
random-weights run carries a warning that its numbers mean nothing, and one with a value from
fewer samples than its metric's minimum (FID below 50) a warning naming those rows. Numbers are
written by `format_number`, which the leaderboard and `evaluate` share. Method names and labels
come from whoever made the runs, so every table and figure escapes them (audiobench.escaping).
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiobench import escaping
from audiobench.errors import AudiobenchError
from audiobench.metrics.plugin import default_metrics, discover_metrics, label_of, min_samples_of
from audiobench.profiles import RANDOM_PROFILES
from audiobench.store import RunDirectory, read_json

KIND_ORDER = {"reference": 0, "text": 1, "audio": 2, "published": 3}


def format_number(value: float, decimals: int = 2, signed: bool = False) -> str:
    """`value` with `decimals` places (and always a sign with `signed`), never a negative zero:
    a value that rounds to zero prints as 0.00 whatever its sign (the FID of the reference
    frames against themselves comes out of the matrix square roots as about -1e-4)."""
    sign = "+" if signed else ""
    text = f"{value:{sign}.{decimals}f}"
    return f"{0.0:{sign}.{decimals}f}" if float(text) == 0 else text


def report_warnings(rows: list[Row], columns: list[Column]) -> dict[str, str]:
    """What a reader must know before trusting the table, short form (a LaTeX caption's) to
    full text: a run of a random-weights profile (`tiny`, `paper-random`), whose numbers mean
    nothing, runs evaluated on different datasets or splits (or a dataset edited in
    between), whose numbers cannot be compared, and values of a column from fewer samples
    than its metric's `min_samples`."""
    found = {}
    profile = next((row.profile for row in rows if row.profile in RANDOM_PROFILES), None)
    if profile is not None:
        found["Random weights: the numbers are meaningless."] = (
            f"Made with the {profile} profile (seeded random weights): these numbers are "
            "meaningless and only show that the pipeline runs."
        )
    datasets = sorted({row.dataset for row in rows if row.dataset is not None})
    if len(datasets) > 1:
        found["Runs evaluated on different datasets or splits: not comparable."] = (
            f"The runs were evaluated on {len(datasets)} different datasets or splits "
            f"({'; '.join(datasets)}): their numbers are not comparable."
        )
    for column in columns:
        found |= _small_sample_warning(rows, column)
    return found


def _small_sample_warning(rows: list[Row], column: Column) -> dict[str, str]:
    """The warning for the rows whose value in `column` comes from too few samples."""
    minimum = min_samples_of(column.metric)
    if minimum is None:
        return {}
    short = [
        f"{row.name} at N = {cell['n']}"
        for row in rows
        if (cell := row.cell(column.metric)) and cell.get("n") is not None and cell["n"] < minimum
    ]
    if not short:
        return {}
    return {
        f"{column.label} from fewer than {minimum} samples: biased, not comparable.": (
            f"{column.label} from fewer than {minimum} samples for {', '.join(short)}: at such "
            "N its bias outweighs the differences between methods, and values at different N "
            "are not comparable."
        )
    }


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
    dataset: str | None = None  # split and dataset hashes it was evaluated on; None if unknown

    def cell(self, metric: str) -> dict[str, Any] | None:
        plugin = discover_metrics().get(metric)
        if self.conditioning == "reference" and plugin and plugin.compares_with_frames():
            return None
        return self.metrics.get(metric)

    def run(self) -> RunDirectory:
        """The run folder of a row made from a run (published leaderboard rows have none)."""
        if self.run_dir is None:
            raise AudiobenchError(f"{self.name} is a published row, not a run")
        return RunDirectory(self.run_dir)

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
                name=(method_class.table_name if method_class else None)
                or record.get("name")
                or method,
                conditioning=method_class.conditioning if method_class else "audio",
                profile=metrics.get("profile", record.get("profile", "unknown")),
                metrics=metrics["metrics"],
                dataset=_evaluated_dataset(record, metrics),
            )
        )
    return sorted(rows, key=lambda row: KIND_ORDER.get(row.conditioning, 2))


def _evaluated_dataset(record: dict[str, Any], metrics: dict[str, Any]) -> str:
    """`split, index <hash>, inputs <hash>` of the dataset the metrics were computed on (from
    metrics.json; run.json's for evaluations that did not record it)."""
    dataset = metrics.get("dataset") or record
    index, inputs = (str(dataset.get(key, "?"))[:8] for key in ("dataset_sha256", "inputs_sha256"))
    return f"{dataset.get('split', record.get('split', '?'))}, index {index}, inputs {inputs}"


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


@dataclass(frozen=True)
class Column:
    """One metric column: its name, header, direction and decimals."""

    metric: str
    label: str
    higher_is_better: bool
    decimals: int


def table_columns(rows: list[Row], metrics: list[str] | None = None) -> list[Column]:
    """The columns of the requested metrics (default: the paper's Table 1). A metric whose
    plugin is not installed keeps the direction its metrics.json recorded."""
    columns = []
    for name in metrics or default_metrics():
        plugin = discover_metrics().get(name)
        recorded = [row.metrics[name] for row in rows if name in row.metrics]
        higher = (
            plugin.higher_is_better
            if plugin
            else all(result.get("higher_is_better", True) for result in recorded)
        )
        columns.append(Column(name, label_of(name), higher, plugin.decimals if plugin else 2))
    return columns


def best_values(rows: list[Row], columns: list[Column]) -> dict[str, float]:
    """Per column, the best value among the audio-conditioned rows."""
    best = {}
    for column in columns:
        values = [
            cell["value"]
            for row in rows
            if row.conditioning == "audio" and (cell := row.cell(column.metric))
        ]
        if values:
            best[column.metric] = max(values) if column.higher_is_better else min(values)
    return best


def _cells(
    rows: list[Row], columns: list[Column], with_ci: bool, bold: str, escape: Callable[[str], str]
) -> list[list[str]]:
    """Text of every cell in one format: `bold` is a format string such as '**{}**' and
    `escape` that format's escaping of the row names (the only cells audiobench did not write)."""
    best = best_values(rows, columns)
    table = []
    for row in rows:
        cells = [escape(row.name)]
        for column in columns:
            result = row.cell(column.metric)
            if result is None:
                cells.append("-")
                continue
            places = column.decimals
            text = format_number(result["value"], places)
            if row.conditioning == "audio" and best.get(column.metric) == result["value"]:
                text = bold.format(text)
            if with_ci and result.get("ci95"):
                low, high = result["ci95"]
                text += f" [{format_number(low, places)}, {format_number(high, places)}]"
            cells.append(text)
        cells.append(str(row.n) if row.n is not None else "-")
        table.append(cells)
    return table


def _header(
    columns: list[Column], arrows: tuple[str, str], escape: Callable[[str], str]
) -> list[str]:
    """Header cells in one format: labels escaped (a plugin names its own label), `arrows`
    already written in that format."""
    up, down = arrows
    return [
        escape("Method"),
        *(f"{escape(c.label)} {up if c.higher_is_better else down}" for c in columns),
        escape("N"),
    ]


def markdown(rows: list[Row], with_ci: bool = False, metrics: list[str] | None = None) -> str:
    columns = table_columns(rows, metrics)
    header = _header(columns, ("↑", "↓"), escaping.markdown_cell)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    body = _cells(rows, columns, with_ci, "**{}**", escaping.markdown_cell)
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    text = "\n".join(lines) + "\n"
    warnings_ = "".join(
        f"> **Warning**: {escaping.markdown_cell(warning)}\n\n"
        for warning in report_warnings(rows, columns).values()
    )
    return warnings_ + text


def latex(rows: list[Row], with_ci: bool = False, metrics: list[str] | None = None) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    columns = table_columns(rows, metrics)
    header = _header(columns, (r"$\uparrow$", r"$\downarrow$"), escaping.latex_text)
    body = _cells(rows, columns, with_ci, r"\textbf{{{}}}", escaping.latex_text)
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
        + "".join(
            rf" \textbf{{{escaping.latex_text(caption)}}}"
            for caption in report_warnings(rows, columns)
        )
        + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def html_report(
    rows: list[Row],
    with_ci: bool,
    figures: dict[str, bytes],
    tables: dict[str, Any] | None = None,
    metrics: list[str] | None = None,
) -> str:
    """One self-contained page: the table, every figure embedded as a PNG, extra tables."""
    columns = table_columns(rows, metrics)
    escape = escaping.html_text
    header = "".join(f"<th>{cell}</th>" for cell in _header(columns, ("↑", "↓"), escape))
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        for cells in _cells(rows, columns, with_ci, "<b>{}</b>", escape)
    )
    warning = "".join(
        f'<p class="warning">{escape(text)}</p>' for text in report_warnings(rows, columns).values()
    )
    images = "".join(
        f'<figure><img alt="{escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{escape(name)}</figcaption></figure>'
        for name, data in figures.items()
    )
    extra = "".join(
        f"<h2>{escape(title)}</h2>{frame.to_html(float_format=lambda v: f'{v:.1f}')}"
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
    tables = {row.run_dir: pd.read_parquet(row.run().samples_file) for row in runs}
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
            with Image.open(row.run().image_path(sample_id)) as image:
                axis.imshow(image.convert("RGB"))
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(escaping.plot_text(row.name), fontsize=8)
            if r == len(ordered) - 1:
                axis.set_xlabel(escaping.plot_text(labels[c]), fontsize=8)
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
        for metric, plugin in discover_metrics().items():
            column = plugin.score_column
            if column in table.columns:
                values = table[["label", column]].dropna().rename(columns={column: "value"})
                frames.append(values.assign(method=row.name, metric=label_of(metric)))
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

    run = row.run()
    record = run.read_run()
    if record is None:
        raise AudiobenchError(f"{row.run_dir} is not a run directory (no run.json)")
    table = pd.read_parquet(run.samples_file)
    index = {s.id: s for s in load_index(record["dataset"], record["split"])}
    chosen = [i for i in table[table.status == "ok"].id if i in index][:samples]
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=64)
    figure, axes = plt.subplots(len(chosen), 2, squeeze=False, figsize=(6, 2.2 * len(chosen)))
    for r, sample_id in enumerate(chosen):
        sample = index[sample_id]
        power = mel(torch.from_numpy(sample.read_audio())).numpy()
        axes[r][0].imshow(np.log(power + 1e-6), origin="lower", aspect="auto", cmap="magma")
        axes[r][0].set_ylabel(escaping.plot_text(sample.label), fontsize=8)
        with Image.open(run.image_path(sample_id)) as image:
            axes[r][1].imshow(image.convert("RGB"))
        for axis in axes[r]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[0][0].set_title("audio (log-mel)", fontsize=9)
    axes[0][1].set_title(escaping.plot_text(row.name), fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
