"""The statistics of a ratings table: the paper's numbers, and the ones a careful reviewer asks for.

In the paper's design (and audiobench's export) the same raters rate the same samples under every
method, so ratings cluster by rater and by sample. Treating every rating as an independent draw
makes intervals too narrow; ignoring the pairing of samples wastes power. So, per method:

- mean +/- standard deviation of the ratings (the paper's "4.07 +/- 0.83");
- a 95% interval of the mean from a two-way cluster ("pigeonhole") bootstrap that resamples raters
  and samples together, and beside it the naive interval that resamples single ratings (labelled);
- ratings per item (the paper had at least 17; fewer is flagged).

Per pair of methods, over the samples both were rated on: the mean per-sample difference with its
cluster-bootstrap interval and a Wilcoxon signed-rank test on the per-sample means, Holm-corrected
across pairs; Mann-Whitney on all ratings is kept as a labelled secondary test. A linear mixed
model with crossed random intercepts for rater and sample checks the bootstrap with a model, and
gives the variance shares a study plan needs. Agreement: Krippendorff's ordinal alpha over raters x
items, with a bootstrap interval over items.

The sample of a rating is its `sample` column; a table without one treats each item as its own
sample (there is then no pairing across methods). Attention-check rows are left out.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from audiobench import escaping
from audiobench.errors import AudiobenchError
from audiobench.metrics.scores import bootstrap_ci

MIN_RATINGS_PER_ITEM = 17
N_RESAMPLES = 2000
REQUIRED = ("rater", "item", "method", "rating")
# replicates bootstrapped at once: bounds the (replicates x ratings) weight matrix's memory
CHUNK = 250


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def generated_ratings(ratings: pd.DataFrame, source: str = "the ratings table") -> pd.DataFrame:
    """The ratings of generated images, validated, with a `sample` column and numeric ratings.

    Attention-check rows are dropped when the table has a `check` column (a table from
    elsewhere may have no attention checks at all). Errors are one line naming `source`."""
    missing = [column for column in REQUIRED if column not in ratings.columns]
    if missing:
        raise AudiobenchError(f"{source} lacks the columns {', '.join(missing)}")
    rated = ratings[ratings["check"] == "rating"] if "check" in ratings.columns else ratings
    if "sample" not in rated.columns:
        rated = rated.assign(sample=rated["item"])
    for column in ("rater", "item", "method", "sample"):
        blank = rated[column].isna() | (rated[column].astype(str).str.strip() == "")
        if blank.any():
            raise AudiobenchError(f"{source}, row {_row(rated, blank)}: the {column} is empty")
    numbers = pd.to_numeric(rated["rating"], errors="coerce")
    bad = ~np.isfinite(numbers.to_numpy(float))
    if bad.any():
        value = rated["rating"][bad].iloc[0]
        raise AudiobenchError(f"{source}, row {_row(rated, bad)}: rating {value!r} is not a number")
    text = {column: rated[column].astype(str) for column in ("rater", "item", "method", "sample")}
    return rated.assign(**text, rating=numbers.astype(float))


def _row(table: pd.DataFrame, mask: Any) -> int:
    """The 1-based data row of the first masked entry (the CSV's line minus its header)."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + 1


@dataclass(frozen=True)
class Crossed:
    """The ratings as integer codes, the form the bootstrap works on."""

    rating: np.ndarray  # (N,) float
    method: np.ndarray  # (N,) codes into `methods`
    rater: np.ndarray  # (N,) codes
    sample: np.ndarray  # (N,) codes
    methods: list[str]
    n_raters: int
    n_samples: int

    @classmethod
    def of(cls, rated: pd.DataFrame) -> Crossed:
        methods, method = np.unique(rated["method"].to_numpy(str), return_inverse=True)
        raters, rater = np.unique(rated["rater"].to_numpy(str), return_inverse=True)
        samples, sample = np.unique(rated["sample"].to_numpy(str), return_inverse=True)
        return cls(
            rated["rating"].to_numpy(float), method, rater, sample, list(methods), len(raters),
            len(samples),
        )  # fmt: skip

    def cell_sums(self, rater_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted rating sums and weights per (method, sample) cell, for each row of weights:
        two arrays of shape (replicates, methods, samples)."""
        cell = self.method * self.n_samples + self.sample
        n_cells = len(self.methods) * self.n_samples
        weights = rater_weights[:, self.rater]
        shape = (len(rater_weights), len(self.methods), self.n_samples)
        sums = _scatter(weights * self.rating, cell, n_cells).reshape(shape)
        counts = _scatter(weights, cell, n_cells).reshape(shape)
        return sums, counts


def _scatter(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """Row-wise sums of `values` (replicates x N) into `size` bins by `index`, in one bincount."""
    rows = len(values)
    bins = (np.arange(rows)[:, None] * size + index[None, :]).ravel()
    return np.bincount(bins, weights=values.ravel(), minlength=rows * size).reshape(rows, size)


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicates of every method's mean and every pair's mean per-sample difference."""

    means: np.ndarray  # (B, methods)
    differences: np.ndarray  # (B, pairs)


def cluster_bootstrap(data: Crossed, pairs: list[tuple[int, int]], n_resamples: int, seed: int):
    """Two-way cluster bootstrap: each replicate draws raters and samples with replacement, and a
    rating counts (times its rater was drawn) x (times its sample was drawn).

    This keeps the ratings of one rater, and of one sample, together, so the replicates vary as
    much as a new study with new raters and new samples would (Owen 2007's pigeonhole bootstrap;
    slightly conservative for the residual). The same draws serve every method and pair."""
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, n_resamples, CHUNK):
        size = min(CHUNK, n_resamples - start)
        raters = rng.multinomial(data.n_raters, np.full(data.n_raters, 1 / data.n_raters), size)
        samples = rng.multinomial(data.n_samples, np.full(data.n_samples, 1 / data.n_samples), size)
        chunks.append(_replicate(data, pairs, raters.astype(float), samples.astype(float)))
    return Replicates(
        np.concatenate([c.means for c in chunks]),
        np.concatenate([c.differences for c in chunks]),
    )


def _replicate(
    data: Crossed, pairs: list[tuple[int, int]], raters: np.ndarray, samples: np.ndarray
) -> Replicates:
    """Method means and paired differences under rater and sample weights (B x raters and
    B x samples); weights of one give the estimates themselves."""
    sums, counts = data.cell_sums(raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums * samples[:, None, :]).sum(-1) / (counts * samples[:, None, :]).sum(-1)
        cell_means = sums / counts
    differences = np.empty((len(raters), len(pairs)))
    for column, (a, b) in enumerate(pairs):
        delta = cell_means[:, a] - cell_means[:, b]
        present = np.isfinite(delta)
        weight = np.where(present, samples, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            differences[:, column] = (np.where(present, delta, 0.0) * weight).sum(-1) / weight.sum(
                -1
            )
    return Replicates(means, differences)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap replicates, ignoring the rare undefined replicate
    (one whose draws left a method without a single rating)."""
    tail = (1 - level) / 2
    low, high = np.nanquantile(replicates, [tail, 1 - tail])
    return [float(low), float(high)]


def analyze(ratings: pd.DataFrame, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Every statistic of the module docstring, as one JSON-ready dictionary."""
    rated = generated_ratings(ratings)
    if rated.empty:
        raise AudiobenchError("the ratings table has no ratings of generated images")
    data = Crossed.of(rated)
    pairs = list(combinations(range(len(data.methods)), 2))
    replicates = cluster_bootstrap(data, pairs, n_resamples, seed)
    ones = _replicate(data, pairs, np.ones((1, data.n_raters)), np.ones((1, data.n_samples)))
    methods = {}
    for index, (method, group) in enumerate(rated.groupby("method", sort=True)):
        per_item = group.groupby("item").size()
        methods[method] = {
            "mean": float(group.rating.mean()),
            "std": float(group.rating.std(ddof=1)) if len(group) > 1 else 0.0,
            "n_ratings": len(group),
            "n_items": int(per_item.size),
            "n_raters": int(group.rater.nunique()),
            "ci95_cluster": percentile_interval(replicates.means[:, index]),
            "ci95_naive": list(bootstrap_ci(group.rating.to_numpy(float), n_resamples, seed)),
            "min_ratings_per_item": int(per_item.min()),
            "items_below_17": int((per_item < MIN_RATINGS_PER_ITEM).sum()),
        }
    return {
        "methods": methods,
        "comparisons": paired_comparisons(rated, data, pairs, ones, replicates),
        "mixed_model": mixed_model(rated),
        "krippendorff_alpha_ordinal": ordinal_alpha(rated, n_resamples, seed),
        "raters": data.n_raters,
        "samples": data.n_samples,
        "n_resamples": n_resamples,
        "seed": seed,
    }


def paired_comparisons(
    rated: pd.DataFrame,
    data: Crossed,
    pairs: list[tuple[int, int]],
    estimates: Replicates,
    replicates: Replicates,
) -> list[dict[str, Any]]:
    """Every pair: mean per-sample difference (a - b) with its cluster interval, the Wilcoxon
    signed-rank test on per-sample means (primary) and Mann-Whitney on all ratings (secondary,
    it ignores the pairing and the clustering), each Holm-corrected across pairs."""
    from scipy.stats import mannwhitneyu

    cell_means = rated.groupby(["method", "sample"]).rating.mean().unstack("sample")
    rows, wilcoxon_p, mann_whitney_p = [], [], []
    for column, (a, b) in enumerate(pairs):
        name_a, name_b = data.methods[a], data.methods[b]
        differences = (cell_means.loc[name_a] - cell_means.loc[name_b]).dropna().to_numpy()
        p = _signed_rank_p(differences)
        wilcoxon_p.append(p)
        mann_whitney_p.append(
            float(
                mannwhitneyu(
                    rated[rated.method == name_a].rating,
                    rated[rated.method == name_b].rating,
                    alternative="two-sided",
                ).pvalue
            )
        )
        paired = differences.size > 0
        rows.append(
            {
                "a": name_a,
                "b": name_b,
                "n_samples": int(differences.size),
                "mean_difference": float(estimates.differences[0, column]) if paired else None,
                "ci95_cluster": percentile_interval(replicates.differences[:, column])
                if paired
                else None,
                "wilcoxon_p": p,
            }
        )
    tested = [i for i, p in enumerate(wilcoxon_p) if p is not None]
    wilcoxon_holm = dict(zip(tested, holm([wilcoxon_p[i] for i in tested]), strict=True))
    for index, (row, p, q) in enumerate(
        zip(rows, mann_whitney_p, holm(mann_whitney_p), strict=True)
    ):
        row["wilcoxon_p_holm"] = wilcoxon_holm.get(index)
        row["secondary_mann_whitney"] = {
            "p": p,
            "p_holm": q,
            "note": "ignores pairing and clusters",
        }
    return rows


def _signed_rank_p(differences: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p of per-sample differences: None without shared samples,
    1.0 when every difference is zero (no evidence either way)."""
    from scipy.stats import wilcoxon

    if differences.size == 0:
        return None
    if not np.any(differences):
        return 1.0
    return float(wilcoxon(differences).pvalue)


def mixed_model(rated: pd.DataFrame) -> dict[str, Any]:
    """rating ~ 0 + method, with crossed random intercepts for rater and sample (REML).

    Reports each method's mean and every pairwise difference with Wald 95% intervals, the
    variance components and their shares. A fit that fails or does not converge says so (and
    why) and reports nothing else: the bootstrap results stand without it."""
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    methods = sorted(rated["method"].unique())
    # codes keep the formula's level names ours, whatever the table's names contain
    coded = pd.DataFrame(
        {
            "rating": rated["rating"].to_numpy(float),
            "method": rated["method"].map({m: f"m{i:05d}" for i, m in enumerate(methods)}),
            "rater": rated["rater"].to_numpy(str),
            "sample": rated["sample"].to_numpy(str),
        }
    )
    model = smf.mixedlm(
        "rating ~ 0 + C(method)",
        coded,
        groups=np.ones(len(coded)),
        re_formula="0",
        vc_formula={"rater": "0 + C(rater)", "sample": "0 + C(sample)"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = model.fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as error:
            return {"converged": False, "message": f"the fit failed: {error}"}
    notes = sorted({str(w.message).splitlines()[0] for w in caught})
    failed = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    if not fit.converged or failed or not np.all(np.isfinite(fit.bse_fe)):
        return {"converged": False, "message": "; ".join(notes) or "the optimiser did not converge"}
    estimate = fit.fe_params.to_numpy()
    covariance = fit.cov_params().to_numpy()[: len(methods), : len(methods)]
    variance = dict(zip(model.exog_vc.names, (float(v) for v in fit.vcomp), strict=True))
    variance["residual"] = float(fit.scale)
    total = sum(variance.values())
    return {
        "converged": True,
        "warnings": notes,
        "methods": {
            m: {"mean": float(estimate[i]), "ci95": _wald(estimate[i], covariance[i, i])}
            for i, m in enumerate(methods)
        },
        "differences": [
            {
                "a": methods[a],
                "b": methods[b],
                "estimate": float(estimate[a] - estimate[b]),
                "ci95": _wald(
                    estimate[a] - estimate[b],
                    covariance[a, a] + covariance[b, b] - 2 * covariance[a, b],
                ),
            }
            for a, b in combinations(range(len(methods)), 2)
        ],
        "variance": variance,
        "variance_shares": {k: v / total if total > 0 else 0.0 for k, v in variance.items()},
    }


def _wald(estimate: float, variance: float) -> list[float]:
    half = 1.959963984540054 * float(np.sqrt(max(variance, 0.0)))
    return [float(estimate - half), float(estimate + half)]


def ordinal_alpha(rated: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal) over raters x items, with a 95% bootstrap interval that
    resamples items.

    Alpha depends on the data only through the summed per-item coincidence matrices (the ordinal
    metric through their margins), so a resample is a weighted sum of per-item matrices: every
    replicate is computed at once, without re-running the estimator per replicate."""
    matrix = rated.pivot_table("rating", "item", "rater", aggfunc="first").to_numpy(float)
    per_item = coincidences(matrix)
    if len(per_item) == 0:
        return {"value": None, "ci95": None, "note": "undefined: no item has two raters"}
    estimate = _alpha(per_item.sum(axis=0)[None])[0]
    if not np.isfinite(estimate):
        return {"value": None, "ci95": None, "note": "undefined: the ratings do not vary"}
    rng = np.random.default_rng(seed)
    n_items = len(per_item)
    draws = rng.multinomial(n_items, np.full(n_items, 1 / n_items), n_resamples).astype(float)
    replicates = _alpha(np.einsum("bu,uck->bck", draws, per_item))
    return {"value": float(estimate), "ci95": percentile_interval(replicates)}


def coincidences(matrix: np.ndarray) -> np.ndarray:
    """Per-item coincidence matrices (items x values x values) of an items x raters matrix with
    NaN for missing ratings; items with fewer than two ratings pair nothing and are left out."""
    values = np.unique(matrix[np.isfinite(matrix)])
    counts = np.stack([(matrix == v).sum(axis=1) for v in values], axis=1).astype(float)
    counts = counts[counts.sum(axis=1) >= 2]
    pairs = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(len(values))
    return pairs / (counts.sum(axis=1) - 1)[:, None, None]


def _alpha(coincidences: np.ndarray) -> np.ndarray:
    """Ordinal alpha of each (values x values) coincidence matrix in a (B, V, V) stack."""
    totals = coincidences.sum(axis=2)  # n_c
    cumulative = np.cumsum(totals, axis=1)
    # ordinal distance: (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared
    distance = (
        cumulative[:, None, :]
        - cumulative[:, :, None]
        + (totals[:, :, None] - totals[:, None, :]) / 2
    ) ** 2
    n = totals.sum(axis=1)
    observed = (coincidences * distance).sum(axis=(1, 2))
    expected = (totals[:, :, None] * totals[:, None, :] * distance).sum(axis=(1, 2)) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - observed / expected


def table(result: dict[str, Any], latex: bool = False) -> str:
    """Markdown (or LaTeX rows) of mean +/- std, both intervals and N per method. Method names
    come from the ratings table, so they are escaped for the format; the rest is ours."""
    escape = escaping.latex_text if latex else escaping.markdown_cell
    sign, below = (r"$\pm$", r"$<$") if latex else ("±", "<")
    rows = [
        (
            escape(name),
            f"{m['mean']:.2f} {sign} {m['std']:.2f}",
            _interval(m["ci95_cluster"]),
            _interval(m["ci95_naive"]),
            str(m["n_ratings"]),
            str(m["min_ratings_per_item"]) + (f" ({below} 17)" if m["items_below_17"] else ""),
        )
        for name, m in result["methods"].items()
    ]
    header = (
        "Method",
        "Rating (mean ± std)",
        "95% CI (raters × samples)",
        "95% CI naive",
        "Ratings",
        "Min ratings/item",
    )
    if latex:
        return "\n".join(" & ".join(row) + r" \\" for row in rows) + "\n"
    return _markdown(header, rows)


def report(result: dict[str, Any]) -> str:
    """The whole analysis as markdown: the method table, the paired comparisons, the mixed model
    and agreement, each with what its numbers mean."""
    escape = escaping.markdown_cell
    comparisons = [
        (
            f"{escape(c['a'])} − {escape(c['b'])}",
            str(c["n_samples"]),
            "n/a" if c["mean_difference"] is None else f"{c['mean_difference']:+.2f}",
            "n/a" if c["ci95_cluster"] is None else _interval(c["ci95_cluster"]),
            _p(c["wilcoxon_p_holm"]),
            _p(c["secondary_mann_whitney"]["p_holm"]),
        )
        for c in result["comparisons"]
    ]
    parts = [
        table(result),
        "The cluster interval resamples raters and samples together; the naive one treats every "
        "rating as independent and is too narrow when ratings cluster.\n",
        _markdown(
            (
                "Pair (a − b)",
                "Shared samples",
                "Mean difference",
                "95% CI (raters × samples)",
                "Wilcoxon p (Holm)",
                "Mann-Whitney p (Holm, secondary)",
            ),
            comparisons,
        ),
        _mixed_model_text(result["mixed_model"]),
        _alpha_text(result["krippendorff_alpha_ordinal"]),
    ]
    return "\n".join(parts)


def _mixed_model_text(fit: dict[str, Any]) -> str:
    if not fit["converged"]:
        return f"Mixed model: not reported, {escaping.markdown_cell(fit['message'])}.\n"
    rows = [
        (escaping.markdown_cell(name), f"{m['mean']:.2f}", _interval(m["ci95"]))
        for name, m in fit["methods"].items()
    ]
    shares = fit["variance_shares"]
    return (
        _markdown(("Method", "Mixed-model mean", "95% CI (Wald)"), rows)
        + f"\nVariance shares: rater {shares['rater']:.0%}, sample {shares['sample']:.0%}, "
        f"residual {shares['residual']:.0%}.\n"
    )


def _alpha_text(alpha: dict[str, Any]) -> str:
    if alpha["value"] is None:
        return f"Krippendorff's alpha (ordinal): {alpha['note']}\n"
    return (
        f"Krippendorff's alpha (ordinal): {alpha['value']:.3f}, "
        f"95% CI {_interval(alpha['ci95'], digits=3)}\n"
    )


def _interval(bounds: list[float], digits: int = 2) -> str:
    return f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
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
