"""Metrics: pure scores on embeddings (`scores`, `mmd`), and the metric plugins built on them.

Every metric is a `Metric` subclass registered under the `audiobench.metrics` entry points
(`plugin`); the paper's (AIS, IIS, AIC, FID), the speaker study's SID, KID, CMMD and AIS-IB
are plugin modules of this package.
"""

from audiobench.metrics.mmd import mmd
from audiobench.metrics.plugin import (
    Metric,
    MetricInputs,
    MetricResult,
    ScoreSettings,
    default_metrics,
    discover_metrics,
    get_metric,
)
from audiobench.metrics.scores import agreement_rate, bootstrap_ci, win_rate

__all__ = [
    "Metric",
    "MetricInputs",
    "MetricResult",
    "ScoreSettings",
    "agreement_rate",
    "bootstrap_ci",
    "default_metrics",
    "discover_metrics",
    "get_metric",
    "mmd",
    "win_rate",
]
