"""Every registered metric of a small run equals an independent per-image computation.

`benchmarks/reference_metrics.py` embeds each image, frame, clip and name alone and writes the
formulas out (loops for win rates and kernels, scipy's sqrtm for FID); `evaluate` batches,
caches and vectorises. Batch-1 and batched encoders differ in float rounding only.
"""

from __future__ import annotations

import pytest
from audiobench.benchmarks.reference_metrics import reference_scores

from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.metrics.plugin import discover_metrics
from tests.test_evaluation import make_run

TOLERANCE = {"fid": 1e-3, "kid": 1e-3, "cmmd": 1e-3}  # relative; win rates and shares: exact


# 12 images give rank-deficient 2048 x 2048 covariances: scipy's sqrtm says so, and FID is still
# defined, and audiobench's and this reference's values agree within TOLERANCE
@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_every_metric_equals_the_per_image_reference(demo_dir, tmp_path):
    run = make_run(demo_dir, tmp_path, "sd-text", steps="2")
    names = tuple(discover_metrics())
    result = evaluate(EvaluateSettings(run, metrics=names, profile="tiny", device="cpu"))
    expected = reference_scores(run, names)
    assert result["n_evaluated"] == 12
    for name in names:
        value = result["metrics"][name]["value"]
        assert value == pytest.approx(expected[name], rel=TOLERANCE.get(name, 1e-9)), name
    assert 0 < result["metrics"]["ais"]["value"] < 100  # not a degenerate run
    assert result["metrics"]["fid"]["value"] > 1.0
