"""The human-evaluation statistics against independent computations, on synthetic studies with
known rater and sample effects: the crossed design of the paper (every rater rates every sample
under every method)."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from audiobench.human_eval.analyze import (
    Crossed,
    _alpha,
    _replicate,
    analyze,
    cluster_bootstrap,
    coincidences,
    mixed_model,
    percentile_interval,
    report,
)
from scipy.stats import wilcoxon

from audiobench.metrics.scores import bootstrap_ci

PAPER_RATERS, PAPER_SAMPLES = 17, 15


def crossed_study(
    rng: np.random.Generator,
    means: dict[str, float],
    raters: int = PAPER_RATERS,
    samples: int = PAPER_SAMPLES,
    sds: tuple[float, float, float] = (0.5, 0.5, 0.8),
    ordinal: bool = False,
) -> pd.DataFrame:
    """One study: rating = mean of the method + rater effect + sample effect + noise, the rater
    and sample effects shared by every method. `ordinal` rounds and clips to 1-5 as raters do."""
    rater_sd, sample_sd, residual_sd = sds
    rater_effect = rng.normal(0, rater_sd, raters)
    sample_effect = rng.normal(0, sample_sd, samples)
    rows = []
    for method, mean in means.items():
        noise = rng.normal(0, residual_sd, (raters, samples))
        ratings = mean + rater_effect[:, None] + sample_effect[None, :] + noise
        if ordinal:
            ratings = np.clip(np.rint(ratings), 1, 5)
        for r in range(raters):
            for s in range(samples):
                rows.append((f"r{r}", f"{method}-{s}", method, f"s{s}", ratings[r, s]))
    return pd.DataFrame(rows, columns=["rater", "item", "method", "sample", "rating"])


def test_the_cluster_interval_covers_the_true_mean_at_close_to_its_nominal_rate():
    """200 simulated studies of the paper's size: the two-way cluster interval covers the true
    mean at close to 95%; the naive interval, which treats ratings as independent, far less."""
    rng = np.random.default_rng(2023)
    covered = {"cluster": 0, "naive": 0}
    for study in range(200):
        rated = crossed_study(rng, {"m": 3.0})
        replicates = cluster_bootstrap(Crossed.of(rated), [], 1000, seed=study)
        low, high = percentile_interval(replicates.means[:, 0])
        covered["cluster"] += low <= 3.0 <= high
        low, high = bootstrap_ci(rated.rating.to_numpy(), 1000, seed=study)
        covered["naive"] += low <= 3.0 <= high
    cluster, naive = covered["cluster"] / 200, covered["naive"] / 200
    print(f"coverage of 95% intervals: cluster {cluster:.3f}, naive {naive:.3f}")
    assert 0.90 <= cluster <= 0.98
    assert naive <= cluster - 0.25  # measured: cluster 0.910, naive 0.520


def test_a_replicate_equals_the_mean_of_the_resampled_table():
    """The weighted replicate is the estimate recomputed on a table built by drawing raters and
    samples with replacement (each copy of a drawn sample meeting each copy of a drawn rater)."""
    rng = np.random.default_rng(0)
    rated = crossed_study(rng, {"a": 3.5, "b": 3.0}, raters=6, samples=5, ordinal=True)
    data = Crossed.of(rated)
    drawn_raters = rng.integers(0, 6, 6)
    drawn_samples = rng.integers(0, 5, 5)
    weights_r = np.bincount(drawn_raters, minlength=6).astype(float)[None]
    weights_s = np.bincount(drawn_samples, minlength=5).astype(float)[None]
    replicate = _replicate(data, [(0, 1)], weights_r, weights_s)
    table = pd.concat(
        [
            rated[(rated.rater == f"r{r}") & (rated["sample"] == f"s{s}")].assign(
                sample=f"s{s}#{j}", rater=f"r{r}#{i}"
            )
            for i, r in enumerate(drawn_raters)
            for j, s in enumerate(drawn_samples)
        ]
    )
    means = table.groupby("method").rating.mean()
    assert replicate.means[0] == pytest.approx([means["a"], means["b"]])
    per_sample = table.groupby(["method", "sample"]).rating.mean().unstack("sample")
    assert replicate.differences[0, 0] == pytest.approx(
        (per_sample.loc["a"] - per_sample.loc["b"]).mean()
    )


def test_the_paired_comparison_finds_a_known_difference():
    rng = np.random.default_rng(1)
    rated = crossed_study(rng, {"better": 3.5, "worse": 3.0}, ordinal=True)
    result = analyze(rated, n_resamples=500)
    (comparison,) = result["comparisons"]
    assert (comparison["a"], comparison["b"], comparison["n_samples"]) == ("better", "worse", 15)
    cell = rated.groupby(["method", "sample"]).rating.mean().unstack("sample")
    differences = cell.loc["better"] - cell.loc["worse"]
    assert comparison["mean_difference"] == pytest.approx(differences.mean())
    assert comparison["wilcoxon_p"] == pytest.approx(wilcoxon(differences).pvalue)
    assert comparison["wilcoxon_p_holm"] == comparison["wilcoxon_p"]  # one pair: nothing to adjust
    assert comparison["wilcoxon_p"] < 0.01
    low, high = comparison["ci95_cluster"]
    assert 0 < low < 0.5 < high


def test_identical_methods_differ_by_nothing():
    rng = np.random.default_rng(2)
    one = crossed_study(rng, {"a": 3.0}, ordinal=True)
    both = pd.concat([one, one.assign(method="b", item=one["item"] + "'")])
    (comparison,) = analyze(both, n_resamples=200)["comparisons"]
    assert comparison["mean_difference"] == 0 and comparison["ci95_cluster"] == [0.0, 0.0]
    assert comparison["wilcoxon_p"] == 1.0


def test_holm_runs_across_the_pairs():
    rng = np.random.default_rng(3)
    rated = crossed_study(rng, {"a": 3.6, "b": 3.3, "c": 3.0}, ordinal=True)
    comparisons = analyze(rated, n_resamples=200)["comparisons"]
    raw = sorted((c["wilcoxon_p"], c["wilcoxon_p_holm"]) for c in comparisons)
    assert raw[0][1] == pytest.approx(min(1.0, 3 * raw[0][0]))
    assert raw[1][1] == pytest.approx(max(raw[0][1], min(1.0, 2 * raw[1][0])))


def test_the_mixed_model_recovers_known_effects_and_components():
    """Balanced and complete: the fixed effects are the method means, and the difference's
    standard error is sqrt(2 residual / (raters x samples)), since rater and sample effects
    cancel; the variance components land near the true ones (0.25, 0.25, 0.64)."""
    rng = np.random.default_rng(4)
    rated = crossed_study(rng, {"a": 3.5, "b": 3.0}, raters=30, samples=30)
    fit = mixed_model(rated)
    assert fit["converged"], fit
    means = rated.groupby("method").rating.mean()
    for method in ("a", "b"):
        assert fit["methods"][method]["mean"] == pytest.approx(means[method])
    (difference,) = fit["differences"]
    assert difference["estimate"] == pytest.approx(means["a"] - means["b"])
    half = 1.959963984540054 * np.sqrt(2 * fit["variance"]["residual"] / 900)
    assert difference["ci95"] == pytest.approx(
        [difference["estimate"] - half, difference["estimate"] + half]
    )
    variance = fit["variance"]
    assert variance["residual"] == pytest.approx(0.64, rel=0.1)
    assert 0.1 < variance["rater"] < 0.5 and 0.1 < variance["sample"] < 0.5
    assert sum(fit["variance_shares"].values()) == pytest.approx(1.0)


def test_a_mixed_model_that_cannot_converge_says_so_and_the_rest_is_reported():
    rows = [(f"r{r}", f"{m}{s}", m, f"s{s}", 3) for r in range(4) for s in range(4) for m in "ab"]
    constant = pd.DataFrame(rows, columns=["rater", "item", "method", "sample", "rating"])
    result = analyze(constant, n_resamples=100)
    assert result["mixed_model"]["converged"] is False and result["mixed_model"]["message"]
    assert result["methods"]["a"]["ci95_cluster"] == [3.0, 3.0]
    assert result["krippendorff_alpha_ordinal"]["value"] is None
    text = report(result)
    assert "Mixed model: not reported" in text and "undefined" in text


def test_the_alpha_of_a_resample_is_the_alpha_of_the_resampled_items():
    rng = np.random.default_rng(5)
    rated = crossed_study(rng, {"a": 3.5, "b": 2.5}, raters=5, samples=6, ordinal=True)
    matrix = rated.pivot_table("rating", "item", "rater").to_numpy(float, copy=True)
    matrix[0, :3] = np.nan  # missing ratings, and an item with a single rating
    matrix[1, :4] = np.nan
    per_item = coincidences(matrix)
    pairable = matrix[np.isfinite(matrix).sum(axis=1) >= 2]
    assert len(per_item) == len(pairable) == len(matrix) - 1
    for _ in range(3):
        counts = rng.multinomial(len(pairable), np.full(len(pairable), 1 / len(pairable)))
        # the item with a single rating pairs nothing, so it changes nothing
        resampled = np.vstack([np.repeat(pairable, counts, axis=0), matrix[1:2]])
        expected = krippendorff.alpha(reliability_data=resampled.T, level_of_measurement="ordinal")
        weighted = np.einsum("u,uck->ck", counts.astype(float), per_item)
        assert _alpha(weighted[None])[0] == pytest.approx(expected)


def test_analyze_json_holds_every_statistic(tmp_path, cli):
    rng = np.random.default_rng(6)
    crossed_study(rng, {"a": 3.5, "b": 3.0}, ordinal=True).to_csv(tmp_path / "r.csv", index=False)
    code, out, err = cli("human-eval", "analyze", tmp_path / "r.csv", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["methods"]["a"]["ci95_cluster"]) == 2
    assert len(result["methods"]["a"]["ci95_naive"]) == 2
    assert result["comparisons"][0]["ci95_cluster"] and result["comparisons"][0]["wilcoxon_p"]
    assert result["mixed_model"]["converged"] and result["mixed_model"]["differences"]
    assert len(result["krippendorff_alpha_ordinal"]["ci95"]) == 2
    code, out, err = cli("human-eval", "analyze", tmp_path / "r.csv")
    assert code == 0 and "Wilcoxon" in out and "Variance shares" in out, err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(columns=["rater"]), "lacks the columns rater"),
        (
            lambda t: t.assign(rating=t.rating.astype(str).where(t.index != 4, "good")),
            "row 5: rating 'good' is not a number",
        ),
        (lambda t: t.assign(method=t.method.where(t.index != 2, "")), "row 3: the method is empty"),
    ],
)
def test_malformed_ratings_files_are_one_line_errors_naming_the_file(tmp_path, cli, edit, message):
    rng = np.random.default_rng(7)
    table = crossed_study(rng, {"a": 3.0}, raters=3, samples=3, ordinal=True)
    path = tmp_path / "ratings.csv"
    edit(table).to_csv(path, index=False)
    code, _, err = cli("human-eval", "analyze", path)
    assert code == 2 and err.count("\n") == 1 and str(path) in err and message in err, err


def test_one_rater_leaves_alpha_undefined_and_everything_else_reported(tmp_path, cli):
    rng = np.random.default_rng(8)
    alone = crossed_study(rng, {"a": 3.5, "b": 3.0}, raters=1, ordinal=True)
    alone.to_csv(tmp_path / "one.csv", index=False)
    code, out, err = cli("human-eval", "analyze", tmp_path / "one.csv", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["krippendorff_alpha_ordinal"] == {
        "value": None,
        "ci95": None,
        "note": "undefined: no item has two raters",
    }
    assert result["methods"]["a"]["mean"] == pytest.approx(alone[alone.method == "a"].rating.mean())
    (comparison,) = result["comparisons"]
    assert comparison["n_samples"] == PAPER_SAMPLES and comparison["wilcoxon_p"] is not None
