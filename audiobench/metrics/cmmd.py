"""CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID: Towards a Better Evaluation Metric for
Image Generation"): the MMD of CLIP ViT-L/14 (336 px) image embeddings of the generated images
and the reference frames, Gaussian RBF kernel with sigma 10, scaled by 1000 (lower is better).
"""

from __future__ import annotations

import torch

from audiobench.features import FeatureKind
from audiobench.metrics.mmd import mmd
from audiobench.metrics.plugin import SetDistance

SIGMA, SCALE = 10.0, 1000.0


class CMMD(SetDistance):
    name = "cmmd"
    label = "CMMD"
    description = "CLIP maximum mean discrepancy (ViT-L/14 at 336 px, RBF sigma 10, x1000)"
    kind = FeatureKind("clip_l14_336", "image")
    decimals = 3

    def distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        return mmd(set_a.numpy(), set_b.numpy(), SIGMA, SCALE)

    def details(self, set_a: torch.Tensor, set_b: torch.Tensor) -> dict:
        return {
            "image_role": self.kind.role,
            "kernel": f"gaussian rbf, sigma {SIGMA:g}",
            "scale": SCALE,
            "estimator": "google-research/cmmd (biased, diagonal included)",
        }
