"""The statistics of a ratings table, as the paper reports them and more.

Per method: mean +/- standard deviation of the ratings (the paper's "4.07 +/- 0.83"), a 95%
bootstrap interval of the mean (seeded), and ratings per item (the paper had at least 17; fewer
is flagged). Inter-rater agreement: Krippendorff's alpha, ordinal, over raters x items.
Pairwise comparisons: two-sided Mann-Whitney U between every pair of methods, Holm-corrected.
Attention-check rows are left out.
"""

from __future__ import annotations

import io
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from audiobench import escaping
from audiobench.errors import AudiobenchError
from audiobench.metrics.scores import bootstrap_ci

MIN_RATINGS_PER_ITEM = 17


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


REQUIRED = ("rater", "item", "method", "rating")


def generated_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings of generated images: every row, or without the attention-check rows when the
    table has a `check` column (a table from elsewhere may have no attention checks at all)."""
    missing = [column for column in REQUIRED if column not in ratings.columns]
    if missing:
        raise AudiobenchError(f"the ratings table lacks the columns {', '.join(missing)}")
    return ratings[ratings["check"] == "rating"] if "check" in ratings.columns else ratings


def analyze(ratings: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    import krippendorff
    from scipy.stats import mannwhitneyu

    rated = generated_ratings(ratings)
    if rated.empty:
        raise AudiobenchError("the ratings table has no ratings of generated images")
    methods = {}
    for method, group in rated.groupby("method", sort=True):
        per_item = group.groupby("item").size()
        low, high = bootstrap_ci(group.rating.to_numpy(float), seed=seed)
        methods[method] = {
            "mean": float(group.rating.mean()),
            "std": float(group.rating.std(ddof=1)),
            "n_ratings": len(group),
            "n_items": int(per_item.size),
            "ci95": [low, high],
            "min_ratings_per_item": int(per_item.min()),
            "items_below_17": int((per_item < MIN_RATINGS_PER_ITEM).sum()),
        }
    matrix = rated.pivot_table("rating", "rater", "item", aggfunc="first")
    alpha = float(
        krippendorff.alpha(reliability_data=matrix.to_numpy(float), level_of_measurement="ordinal")
    )
    pairs = list(combinations(sorted(methods), 2))
    raw = [
        float(
            mannwhitneyu(
                rated[rated.method == a].rating,
                rated[rated.method == b].rating,
                alternative="two-sided",
            ).pvalue
        )
        for a, b in pairs
    ]
    comparisons = [
        {"a": a, "b": b, "p": p, "p_holm": q}
        for (a, b), p, q in zip(pairs, raw, holm(raw), strict=True)
    ]
    return {
        "methods": methods,
        "krippendorff_alpha_ordinal": alpha,
        "comparisons": comparisons,
        "raters": int(rated.rater.nunique()),
    }


def table(result: dict[str, Any], latex: bool = False) -> str:
    """Markdown (or LaTeX rows) of mean +/- std, the interval and N per method. Method names
    come from the ratings table, so they are escaped for the format; the rest is ours."""
    escape = escaping.latex_text if latex else escaping.markdown_cell
    sign, below = (r"$\pm$", r"$<$") if latex else ("±", "<")
    rows = [
        (
            escape(name),
            f"{m['mean']:.2f} {sign} {m['std']:.2f}",
            f"[{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]",
            str(m["n_ratings"]),
            str(m["min_ratings_per_item"]) + (f" ({below} 17)" if m["items_below_17"] else ""),
        )
        for name, m in result["methods"].items()
    ]
    header = ("Method", "Rating (mean ± std)", "95% CI", "Ratings", "Min ratings/item")
    if latex:
        return "\n".join(" & ".join(row) + r" \\" for row in rows) + "\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def plot(ratings: pd.DataFrame) -> bytes:
    """The distribution of ratings per method as stacked proportions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = generated_ratings(ratings)
    shares = pd.crosstab(rated.method, rated.rating, normalize="index")
    shares = shares.reindex(columns=[1, 2, 3, 4, 5], fill_value=0.0)
    shares.index = shares.index.map(escaping.plot_text)  # the tick labels
    figure, axis = plt.subplots(figsize=(6, 0.6 * len(shares) + 1.2))
    shares.plot.barh(stacked=True, ax=axis, colormap="RdYlGn", width=0.7)
    axis.set_xlabel("share of ratings")
    axis.legend(title="rating", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
