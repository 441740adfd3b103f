"""The fast Fréchet distance used for bootstrap intervals equals torch-fidelity's."""

from __future__ import annotations

import pytest
import torch

from audiobench.metrics.fid import _frechet_distance, fid_from_features
from audiobench.metrics.plugin import MetricInputs, ScoreSettings, set_bootstrap_ci


@pytest.mark.parametrize(
    ("count", "other", "dim"),
    [(12, 12, 64), (300, 300, 32), (9, 20, 64), (300, 40, 32)],
    ids=["n<d", "n>d", "unequal n<d", "unequal n>d"],
)
def test_fast_distance_equals_torch_fidelity(count, other, dim):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(count, dim, generator=generator)
    b = 0.7 * torch.randn(other, dim, generator=generator) + 0.3
    expected = fid_from_features(a, b)
    assert _frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_identical_sets_are_at_distance_zero_and_shifts_add_their_square():
    a = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-4)
    shift = torch.full((8,), 0.5)
    assert fid_from_features(a, a + shift) == pytest.approx(8 * 0.25, rel=1e-4)


@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_interval_is_seeded_and_ordered(paired):
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(40, 16, generator=generator), torch.randn(40, 16, generator=generator) + 1
    inputs = MetricInputs([], {}, None, lambda kind, texts: None, paired=paired)
    settings = ScoreSettings(seed=3, set_resamples=50)
    low, high = set_bootstrap_ci(_frechet_distance, a, b, inputs, settings)
    assert low < high and (low, high) == set_bootstrap_ci(_frechet_distance, a, b, inputs, settings)
    assert low < fid_from_features(a, b) * 1.5 and high > fid_from_features(a, b) * 0.5
