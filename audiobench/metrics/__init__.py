"""The paper's metrics: pure scores on embeddings (`scores`), FID through torch-fidelity (`fid`)."""

from audiobench.metrics.scores import agreement_rate, bootstrap_ci, win_rate

__all__ = ["agreement_rate", "bootstrap_ci", "win_rate"]
