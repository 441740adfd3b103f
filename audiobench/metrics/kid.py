"""KID, kernel Inception distance (Binkowski et al., 2018), computed by torch-fidelity on the
same Inception features as FID: the unbiased MMD^2 estimate with a cubic polynomial kernel,
averaged over 100 random subsets. torch-fidelity's defaults throughout, except that the subset
size is min(1000, N), so that small sets are scored rather than refused.
"""

from __future__ import annotations

import torch

from audiobench.features import FeatureKind
from audiobench.metrics.plugin import SetDistance
from audiobench.models.inception import FEATURE_EXTRACTOR, FEATURE_LAYER

MAX_SUBSET_SIZE = 1000


def kid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """torch-fidelity's KID mean of two (N, 2048) feature sets, subsets of min(1000, N) rows."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    size = min(MAX_SUBSET_SIZE, len(features_a), len(features_b))
    result = kid_features_to_metric(
        features_a.float(), features_b.float(), kid_subset_size=size, verbose=False
    )
    return float(result[KEY_METRIC_KID_MEAN])


class KID(SetDistance):
    name = "kid"
    label = "KID"
    description = "kernel Inception distance (torch-fidelity, cubic kernel, unbiased MMD^2)"
    kind = FeatureKind("inception", "inception")
    decimals = 4

    def distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        return kid_from_features(set_a, set_b)

    def details(self, set_a: torch.Tensor, set_b: torch.Tensor) -> dict:
        return {
            "feature_extractor": f"torch-fidelity {FEATURE_EXTRACTOR}",
            "layer": FEATURE_LAYER,
            "kernel": "polynomial, degree 3, gamma 1/2048, coef0 1",
            "subsets": 100,
            "subset_size": min(MAX_SUBSET_SIZE, len(set_a), len(set_b)),
        }
