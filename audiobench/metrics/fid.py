"""FID: the value always comes from torch-fidelity; audiobench adds N and a bootstrap interval.

`fid_from_dirs` is `torch_fidelity.calculate_metrics(input1, input2, fid=True)` on two folders.
`fid_from_features` feeds features that audiobench extracted (and cached) with torch-fidelity's
own extractor to torch-fidelity's own statistics and distance functions, so both give the same
number for the same images and weights.

The confidence interval needs the distance for many resamples, which torch-fidelity's 2048 x
2048 eigen-decomposition makes slow; `_frechet_distance` computes the same quantity exactly in
the smaller of the sample and feature spaces: with centred feature matrices A (n x d) and B,
tr sqrt(cov_A cov_B) is the nuclear norm of A B^T divided by (n - 1). A test checks it against
torch-fidelity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiobench.errors import AudiobenchError

FID_KEY = "frechet_inception_distance"


def fid_from_dirs(
    dir_a: Path, dir_b: Path, inception_weights: Path | None = None, *, batch_size: int = 64
) -> float:
    """FID between two image folders, exactly as torch-fidelity computes it."""
    import torch_fidelity

    from audiobench.models.checkpoints import load_state_dict

    for folder in (dir_a, dir_b):
        if not Path(folder).is_dir():
            raise AudiobenchError(f"image folder {folder} does not exist")
    if inception_weights is not None:
        load_state_dict(inception_weights)  # refuse pickled code before torch-fidelity loads it
    try:
        result = torch_fidelity.calculate_metrics(
            input1=str(dir_a),
            input2=str(dir_b),
            fid=True,
            feature_extractor_weights_path=None
            if inception_weights is None
            else str(inception_weights),
            cuda=torch.cuda.is_available(),
            batch_size=batch_size,
            verbose=False,
        )
    except (ValueError, RuntimeError) as error:
        raise AudiobenchError(f"FID of {dir_a} and {dir_b} failed: {error}") from error
    return float(result[FID_KEY])


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID of two (N, 2048) float32 feature sets through torch-fidelity's statistics."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    statistics = [fid_features_to_statistics(f.float()) for f in (features_a, features_b)]
    return float(fid_statistics_to_metric(*statistics, verbose=False)[FID_KEY])


def fid_bootstrap_ci(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    n_resamples: int = 100,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of FID, resampling the paired samples (rows) together."""
    if features_a.shape[0] != features_b.shape[0]:
        raise ValueError("bootstrap resamples paired samples: both sets need the same N")
    generator = np.random.default_rng(seed)
    count = features_a.shape[0]
    values = []
    for _ in range(n_resamples):
        rows = torch.from_numpy(generator.integers(0, count, size=count))
        values.append(_frechet_distance(features_a[rows], features_b[rows]))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Fréchet distance of two Gaussians fitted to equally many feature rows (float64)."""
    a, b = features_a.double(), features_b.double()
    count, dim = a.shape
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    traces = float((centred_a**2).sum() + (centred_b**2).sum()) / (count - 1)
    if count <= dim:
        cross = torch.linalg.matrix_norm(centred_a @ centred_b.T, ord="nuc") / (count - 1)
    else:
        product = (centred_a.T @ centred_a) @ (centred_b.T @ centred_b) / (count - 1) ** 2
        cross = torch.linalg.eigvals(product).sqrt().real.sum()
    return mean_term + traces - 2 * float(cross)
