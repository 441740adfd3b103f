"""FID (Table 1): the value always comes from torch-fidelity; audiobench adds N and an interval.

`fid_from_features` feeds features that audiobench extracted (and cached) with torch-fidelity's
own extractor to torch-fidelity's own statistics and distance functions, so it gives
`torch_fidelity.calculate_metrics(input1, input2, fid=True)`'s number for the same images and
weights (`audiobench distance` checks it against torch-fidelity in the tests).

The bootstrap interval needs the distance for many resamples, which torch-fidelity's 2048 x
2048 eigen-decomposition makes slow; `_frechet_distance` computes the same quantity exactly in
the smaller of the sample and feature spaces: with centred feature matrices A (n x d) and B,
tr sqrt(cov_A cov_B) is the nuclear norm of A B^T divided by sqrt((n_A - 1)(n_B - 1)). A test
checks it against torch-fidelity.
"""

from __future__ import annotations

import torch

from audiobench.features import FeatureKind
from audiobench.metrics.plugin import SetDistance
from audiobench.models.inception import FEATURE_EXTRACTOR, FEATURE_LAYER

FID_KEY = "frechet_inception_distance"
FID_MIN_SAMPLES = 50
"""Reports flag an FID from fewer samples than this. FID is biased upwards by a term that
shrinks as 1/N (Chong and Forsyth, CVPR 2020) and fits 2048 x 2048 covariances to N rows, so at
a few dozen images the bias outweighs the differences between methods, and values at
different N cannot be compared at all. Heusel et al. (2017) recommend at least 10,000 samples;
50 is the floor under which audiobench flags a value outright rather than merely reporting its
N beside it."""


class FID(SetDistance):
    name = "fid"
    label = "FID"
    description = "Frechet Inception distance of generated images and reference frames"
    kind = FeatureKind("inception", "inception")
    paper_column = 1
    min_samples = FID_MIN_SAMPLES

    def distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        return fid_from_features(set_a, set_b)

    def resampled_distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        return _frechet_distance(set_a, set_b)

    def details(self, set_a: torch.Tensor, set_b: torch.Tensor) -> dict:
        return {"feature_extractor": f"torch-fidelity {FEATURE_EXTRACTOR}", "layer": FEATURE_LAYER}


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID of two (N, 2048) float32 feature sets through torch-fidelity's statistics."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    statistics = [fid_features_to_statistics(f.float()) for f in (features_a, features_b)]
    return float(fid_statistics_to_metric(*statistics, verbose=False)[FID_KEY])


def _frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance of two Gaussians fitted to two sets of feature rows (float64)."""
    a, b = features_a.double(), features_b.double()
    scale = ((a.shape[0] - 1) * (b.shape[0] - 1)) ** 0.5
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    traces = float(
        (centred_a**2).sum() / (a.shape[0] - 1) + (centred_b**2).sum() / (b.shape[0] - 1)
    )
    if min(a.shape[0], b.shape[0]) <= a.shape[1]:
        cross = torch.linalg.matrix_norm(centred_a @ centred_b.T, ord="nuc") / scale
    else:
        product = (centred_a.T @ centred_a) @ (centred_b.T @ centred_b) / scale**2
        cross = torch.linalg.eigvals(product).sqrt().real.sum()
    return mean_term + traces - 2 * float(cross)
