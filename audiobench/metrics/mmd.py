"""The maximum mean discrepancy of CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID")."""

from __future__ import annotations

import numpy as np
import torch


def mmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """`scale` x MMD^2 of two (N, D) embedding sets under a Gaussian RBF kernel of bandwidth
    `sigma`, exp(-|a - b|^2 / (2 sigma^2)).

    The estimator of google-research/cmmd: the plain (biased) mean of each kernel matrix,
    diagonal included, mean k(x, x') + mean k(y, y') - 2 mean k(x, y). Computed in float64;
    the sets may differ in size.
    """
    a = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"mmd needs two (N, D) arrays of equal D, got {a.shape} and {b.shape}")
    gamma = 1.0 / (2.0 * sigma**2)

    def mean_kernel(p: torch.Tensor, q: torch.Tensor) -> float:
        squared = (p * p).sum(1)[:, None] + (q * q).sum(1)[None, :] - 2.0 * p @ q.T
        return float(torch.exp(-gamma * squared).mean())

    return scale * (mean_kernel(a, a) + mean_kernel(b, b) - 2.0 * mean_kernel(a, b))
