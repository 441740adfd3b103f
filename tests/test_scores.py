"""The pure scores against independent computations and their defining invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiobench.metrics.scores import agreement_rate, bootstrap_ci, win_rate


def brute_force_win_rate(query, paired, pool=None):
    """The definition, literally: a double loop over pairs with a scalar cosine."""
    query, paired = np.asarray(query, np.float64), np.asarray(paired, np.float64)
    pool = range(len(paired)) if pool is None else pool

    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    wins = []
    for i in range(len(query)):
        own = cos(query[i], paired[i])
        outcomes = []
        for j in pool:
            if j == i:
                continue
            other = cos(query[i], paired[j])
            outcomes.append(1.0 if own > other else 0.5 if own == other else 0.0)
        wins.append(sum(outcomes) / len(outcomes))
    return 100 * float(np.mean(wins)), np.array(wins)


def with_ties(count, dim, seed):
    """Random embeddings where several paired rows are exact duplicates (ties)."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(count, dim, generator=generator)
    paired = torch.randn(count, dim, generator=generator)
    paired[3] = paired[7]
    paired[10] = paired[11] = paired[12]
    paired[5] = 2.5 * paired[6]  # same direction, other length: a tie after normalisation
    return query, paired


@pytest.mark.parametrize("block_size", [1, 4, 1024])
def test_win_rate_equals_brute_force_with_ties(block_size):
    query, paired = with_ties(23, 6, seed=0)
    score, per_sample = win_rate(query, paired, block_size=block_size)
    expected_score, expected = brute_force_win_rate(query.numpy(), paired.numpy())
    np.testing.assert_array_equal(per_sample, expected)
    assert score == pytest.approx(expected_score, abs=1e-12)
    assert np.isclose(expected * 22 % 1, 0.5).any()  # some comparisons were ties


def test_win_rate_with_a_pool_equals_brute_force():
    query, paired = with_ties(20, 5, seed=1)
    pool = [0, 3, 7, 10, 11, 15]
    score, per_sample = win_rate(query, paired, torch.tensor(pool), block_size=3)
    expected_score, expected = brute_force_win_rate(query.numpy(), paired.numpy(), pool)
    np.testing.assert_array_equal(per_sample, expected)
    assert score == pytest.approx(expected_score, abs=1e-12)


def test_identical_embeddings_win_every_comparison():
    embeddings = torch.randn(50, 16, generator=torch.Generator().manual_seed(2))
    score, per_sample = win_rate(embeddings, embeddings.clone())
    assert score == 100.0 and (per_sample == 1.0).all()


def test_all_identical_pairs_are_all_ties():
    same = torch.ones(10, 4)
    score, per_sample = win_rate(torch.randn(10, 4), same)
    assert score == 50.0 and (per_sample == 0.5).all()


def test_independent_embeddings_score_chance():
    generator = torch.Generator().manual_seed(3)
    count = 2000
    query, paired = torch.randn(count, 32, generator=generator), torch.randn(count, 32)
    score, _ = win_rate(query, paired, block_size=256)
    # Each win_i averages N-1 fair coin flips; the mean of N of them has sd ~ 50/sqrt(N * 3) at
    # most (correlated through the shared pool); 5 sd is a bound a correct function never fails.
    assert abs(score - 50) < 5 * 50 / math.sqrt(count)


def test_shuffling_the_pairing_destroys_the_signal():
    generator = torch.Generator().manual_seed(4)
    paired = torch.randn(400, 32, generator=generator)
    query = paired + 0.5 * torch.randn(400, 32, generator=generator)
    assert win_rate(query, paired)[0] > 95
    shuffled = query[torch.randperm(400, generator=generator)]
    assert abs(win_rate(shuffled, paired)[0] - 50) < 5


@pytest.mark.parametrize(
    ("query", "paired", "message"),
    [
        (torch.zeros(1, 3), torch.zeros(1, 3), "at least 2 samples"),
        (torch.zeros(4, 3), torch.zeros(5, 3), "matching"),
    ],
)
def test_win_rate_rejects_bad_shapes(query, paired, message):
    with pytest.raises(ValueError, match=message):
        win_rate(query, paired)


def fixed_text_embedder(table):
    def embed(names):
        return torch.tensor([table[name] for name in names], dtype=torch.float64)

    return embed


def unit(angle_cos):
    """A 2-d unit vector at cosine `angle_cos` to (1, 0)."""
    return [angle_cos, math.sqrt(1 - angle_cos**2)]


def test_agreement_at_and_around_the_threshold():
    embed = fixed_text_embedder(
        {
            "dog barking": [1.0, 0.0],
            "above": unit(0.7500001),
            "at": unit(0.75),
            "below": unit(0.7499999),
            "Dog Barking ": [0.0, 1.0],  # equal name (case, spaces) despite orthogonal embedding
        }
    )
    labels = ["dog barking"] * 4
    score, per_sample = agreement_rate(["above", "at", "below", "Dog Barking "], labels, embed)
    np.testing.assert_array_equal(per_sample, [1.0, 0.0, 0.0, 1.0])
    assert score == 50.0


def test_agreement_embeds_each_name_once():
    calls = []

    def embed(names):
        calls.append(list(names))
        return torch.eye(len(names))

    agreement_rate(["a", "b", "a", "a"], ["b", "b", "c", "a"], embed)
    assert calls == [["a", "b", "c"]]


def test_bootstrap_ci_is_seeded_and_contains_the_estimate():
    values = np.random.default_rng(5).random(300)
    low, high = bootstrap_ci(values, seed=7)
    assert (low, high) == bootstrap_ci(values, seed=7)
    assert (low, high) != bootstrap_ci(values, seed=8)
    assert low < values.mean() < high
    # the normal approximation of the interval of a mean: +-1.96 standard errors
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)


def test_bootstrap_of_a_constant_is_the_constant():
    assert bootstrap_ci(np.full(20, 0.5)) == (0.5, 0.5)
