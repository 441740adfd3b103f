"""The fast Fréchet distance used for bootstrap intervals equals torch-fidelity's."""

from __future__ import annotations

import pytest
import torch

from audiobench.metrics.fid import _frechet_distance, fid_bootstrap_ci, fid_from_features


@pytest.mark.parametrize(("count", "dim"), [(12, 64), (300, 32)], ids=["n<d", "n>d"])
def test_fast_distance_equals_torch_fidelity(count, dim):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(count, dim, generator=generator)
    b = 0.7 * torch.randn(count, dim, generator=generator) + 0.3
    expected = fid_from_features(a, b)
    assert _frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_identical_sets_are_at_distance_zero_and_shifts_add_their_square():
    a = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-4)
    shift = torch.full((8,), 0.5)
    assert fid_from_features(a, a + shift) == pytest.approx(8 * 0.25, rel=1e-4)


def test_bootstrap_interval_is_seeded_and_ordered():
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(40, 16, generator=generator), torch.randn(40, 16, generator=generator) + 1
    low, high = fid_bootstrap_ci(a, b, n_resamples=50, seed=3)
    assert low < high and (low, high) == fid_bootstrap_ci(a, b, n_resamples=50, seed=3)
    assert low < fid_from_features(a, b) * 1.5
