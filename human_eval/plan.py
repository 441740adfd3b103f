"""Planning a human study: how wide a method's interval will be, and how likely a difference is
to be found, for a number of raters and samples, before anyone is asked to rate.

In audiobench's design every rater rates every sample under every method, so ratings cluster by
rater and by sample. The model is the one `analyze.mixed_model` fits, crossed random effects:

    rating = mu_method + a_rater + b_sample + e,
    a ~ N(0, rater), b ~ N(0, sample), e ~ N(0, residual),

with the rater and sample effects shared across methods. Its variance components come from a
pilot's ratings or are stated. Many studies are simulated from them; a method's mean has the
closed-form variance rater/R + sample/S + residual/(R*S), which the simulation checks and the
search for a cheaper design uses.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiobench import escaping
from audiobench.errors import AudiobenchError

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
ALPHA = 0.05
N_STUDIES = 2000
GRID = np.arange(2, 61)  # raters and items the suggestion searches, from the least a study needs
PLOT_ITEMS = (5, 10, 20, 40)  # item counts drawn as curves beside the stated and suggested ones
# ratings simulated at once: bounds the (studies x raters x samples x methods) array's memory
CHUNK_RATINGS = 2**22
SD_OPTIONS = ("--rater-sd", "--sample-sd", "--residual-sd")


@dataclass(frozen=True)
class Components:
    """Variances of the rater, sample and residual effects, and where they came from."""

    rater: float
    sample: float
    residual: float
    source: str  # the pilot's path, or "stated"

    def as_dict(self) -> dict[str, Any]:
        variance = {"rater": self.rater, "sample": self.sample, "residual": self.residual}
        return {
            "source": self.source,
            "variance": variance,
            "sd": {name: math.sqrt(value) for name, value in variance.items()},
        }


@dataclass(frozen=True)
class Design:
    """Every one of `raters` rates every one of `items` samples under every one of `methods`."""

    raters: int
    items: int
    methods: int

    @property
    def ratings(self) -> int:
        return self.raters * self.items * self.methods


def variance_components(
    pilot: Path | None,
    rater_sd: float | None,
    sample_sd: float | None,
    residual_sd: float | None,
) -> Components:
    """The components from the pilot's mixed model, or the three stated standard deviations.

    Exactly one source is allowed: stated values beside a pilot would silently override part of
    what the pilot measured."""
    stated = (rater_sd, sample_sd, residual_sd)
    if pilot is not None:
        if any(sd is not None for sd in stated):
            raise AudiobenchError(
                "give either --pilot or --rater-sd/--sample-sd/--residual-sd, not both"
            )
        return pilot_components(pilot)
    if rater_sd is None or sample_sd is None or residual_sd is None:
        missing = [option for option, sd in zip(SD_OPTIONS, stated, strict=True) if sd is None]
        raise AudiobenchError(
            "without --pilot, state all of --rater-sd, --sample-sd and --residual-sd "
            f"(missing: {', '.join(missing)})"
        )
    return Components(rater_sd**2, sample_sd**2, residual_sd**2, source="stated")


def pilot_components(path: Path) -> Components:
    """The variance components of a pilot's ratings, from the mixed model `analyze` reports."""
    from audiobench.human_eval.analyze import mixed_model
    from audiobench.human_eval.ingest import read_ratings

    fit = mixed_model(read_ratings(path))
    if not fit["converged"]:
        raise AudiobenchError(
            f"the mixed model of the pilot {path} did not converge ({fit['message']}); "
            "state the components with --rater-sd, --sample-sd and --residual-sd instead"
        )
    variance = fit["variance"]
    return Components(variance["rater"], variance["sample"], variance["residual"], str(path))


def closed_form_width(components: Components, raters: Any, items: Any) -> Any:
    """The expected width of a 95% interval of one method's mean, for scalars or arrays.

    A method's mean averages one effect per rater (all R shared by every sample), one per sample
    and R*S residuals, so its variance is rater/R + sample/S + residual/(R*S)."""
    variance = (
        components.rater / raters
        + components.sample / items
        + components.residual / (raters * items)
    )
    return 2 * Z95 * np.sqrt(variance)


@dataclass(frozen=True)
class Simulated:
    """What the simulated studies of a design show."""

    width: float  # 2 x Z95 x the SD of one method's mean across studies
    power: float  # share of studies whose signed-rank test finds the difference at ALPHA


def simulate(
    components: Components,
    design: Design,
    difference: float,
    n_studies: int = N_STUDIES,
    seed: int = 0,
) -> Simulated:
    """Simulate `n_studies` studies of `design`, rating by rating, and measure the width of one
    method's interval and the power to find `difference` between the first two methods.

    The test is the one `analyze` reports for a pair of methods, a two-sided Wilcoxon
    signed-rank test on the per-sample mean differences, here without `analyze`'s Holm
    correction across pairs. Studies are drawn in chunks so that memory stays bounded however
    large the design; every chunk is vectorised."""
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK_RATINGS // design.ratings)
    chunks = [
        _studies(components, design, difference, min(per_chunk, n_studies - start), rng)
        for start in range(0, n_studies, per_chunk)
    ]
    method_means = np.concatenate([means for means, _ in chunks])
    differences = np.concatenate([per_sample for _, per_sample in chunks])
    rejected = wilcoxon(differences, axis=1).pvalue < ALPHA
    return Simulated(width=float(2 * Z95 * method_means.std(ddof=1)), power=float(rejected.mean()))


def _studies(
    components: Components,
    design: Design,
    difference: float,
    n_studies: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The first method's mean (studies,) and the per-sample mean differences between the
    second and the first method (studies, items) of `n_studies` simulated studies. Only the
    second method's mean differs (by `difference`); the others equal the first's."""
    raters, items, methods = design.raters, design.items, design.methods
    rater = rng.normal(0, math.sqrt(components.rater), (n_studies, raters, 1, 1))
    sample = rng.normal(0, math.sqrt(components.sample), (n_studies, 1, items, 1))
    residual = rng.normal(0, math.sqrt(components.residual), (n_studies, raters, items, methods))
    method_mean = np.zeros(methods)
    method_mean[1] = difference
    per_sample = (method_mean + rater + sample + residual).mean(axis=1)  # (studies, items, M)
    return per_sample[:, :, 0].mean(axis=1), per_sample[:, :, 1] - per_sample[:, :, 0]


def suggest(components: Components, methods: int, target_width: float) -> Design | None:
    """The design in GRID x GRID whose interval is at most `target_width` wide with the fewest
    ratings (ties: fewer raters, who are the harder to recruit), or None if none is.

    The search uses the closed-form width: simulating every one of the grid's thousands of
    designs would take minutes, and the closed form is exact for the model (a test checks the
    simulation agrees with it)."""
    raters, items = np.meshgrid(GRID, GRID, indexing="ij")
    meets = closed_form_width(components, raters, items) <= target_width
    if not meets.any():
        return None
    raters, items = raters[meets], items[meets]
    best = np.lexsort((raters, raters * items))[0]
    return Design(int(raters[best]), int(items[best]), methods)


def plan(
    components: Components,
    design: Design,
    difference: float,
    target_width: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every number of the plan: the components used, the stated design and, when a target
    width is given, the cheapest design meeting it (None when no design in the grid does)."""
    suggested = None if target_width is None else suggest(components, design.methods, target_width)
    return {
        "components": components.as_dict(),
        "difference": difference,
        "target_width": target_width,
        "studies": N_STUDIES,
        "seed": seed,
        "grid": [int(GRID[0]), int(GRID[-1])],
        "stated": _evaluated(components, design, difference, seed),
        "suggested": None
        if suggested is None
        else _evaluated(components, suggested, difference, seed),
    }


def _evaluated(
    components: Components, design: Design, difference: float, seed: int
) -> dict[str, Any]:
    simulated = simulate(components, design, difference, seed=seed)
    return {
        "raters": design.raters,
        "items": design.items,
        "methods": design.methods,
        "ratings": design.ratings,
        "width_simulated": simulated.width,
        "width_closed_form": float(closed_form_width(components, design.raters, design.items)),
        "power": simulated.power,
    }


def markdown(result: dict[str, Any]) -> str:
    """The plan as a short markdown text: where the components came from, the design table, and
    what its columns mean. The source may be a pilot's path, so it is escaped."""
    components = result["components"]
    source = components["source"]
    sd = components["sd"]
    origin = "stated" if source == "stated" else f"from the pilot {escaping.markdown_cell(source)}"
    target = result["target_width"]
    rows = [_row(name, design) for name, design in _designs(result)]
    header = (
        "Design",
        "Raters",
        "Items",
        "Ratings",
        "Expected 95% width",
        "Closed form",
        f"Power (difference {result['difference']:g})",
    )
    lines = [
        f"Variance components ({origin}): rater sd {sd['rater']:.2f}, sample sd "
        f"{sd['sample']:.2f}, residual sd {sd['residual']:.2f}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    low, high = result["grid"]
    if target is not None and result["suggested"] is None:
        lines += [f"No design with {low}-{high} raters and items reaches width {target:.2f}.", ""]
    elif target is not None:
        lines += [
            f"Suggested: of the designs with {low}-{high} raters and items whose expected width "
            f"is at most {target:.2f}, the one with the fewest ratings.",
            "",
        ]
    lines.append(
        f"Width: of the 95% interval of one method's mean over {result['studies']} simulated "
        "studies. Power: the share of them in which a two-sided Wilcoxon signed-rank test on the "
        f"per-sample mean differences between two methods rejects at {ALPHA}."
    )
    return "\n".join(lines) + "\n"


def _designs(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The stated design and the suggestion, if there is one, each with its name."""
    if result["suggested"] is None:
        return [("stated", result["stated"])]
    return [("stated", result["stated"]), ("suggested", result["suggested"])]


def _row(name: str, design: dict[str, Any]) -> tuple[str, ...]:
    return (
        name,
        str(design["raters"]),
        str(design["items"]),
        str(design["ratings"]),
        f"{design['width_simulated']:.3f}",
        f"{design['width_closed_form']:.3f}",
        f"{design['power']:.2f}",
    )


def plot(result: dict[str, Any]) -> bytes:
    """Expected width against the number of raters, one curve per item count (closed form),
    with the target width as a horizontal line and the table's designs as points (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variance = result["components"]["variance"]
    components = Components(variance["rater"], variance["sample"], variance["residual"], "")
    designs = _designs(result)
    figure, axis = plt.subplots(figsize=(6, 4))
    for items in sorted({*PLOT_ITEMS, *(design["items"] for _, design in designs)}):
        axis.plot(GRID, closed_form_width(components, GRID, items), label=f"{items} items")
    for name, design in designs:
        axis.plot(design["raters"], design["width_closed_form"], "o", color="black")
        axis.annotate(name, (design["raters"], design["width_closed_form"]), xytext=(4, 4),
                      textcoords="offset points")  # fmt: skip
    if result["target_width"] is not None:
        axis.axhline(result["target_width"], color="red", linestyle="--", label="target")
    axis.set_xlabel("raters")
    axis.set_ylabel("expected width of a 95% interval")
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
