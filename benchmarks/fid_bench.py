"""`audiobench fid` against calling torch-fidelity directly on the same two image folders.

    python -m audiobench.benchmarks fid [--quick]

`audiobench fid DIR_A DIR_B` is `audiobench.scoring.distance(..., ["fid"])`: audiobench's own
feature pipeline (torch-fidelity's extractor, batched, decoding on every core) and
torch-fidelity's statistics, plus a 100-resample bootstrap interval; it should cost no more
than `torch_fidelity.calculate_metrics`. Both sides read the generated images and reference
frames of a synthetic run (the evaluation stage's) with the tiny profile's seeded random
Inception weights file, in one process, alternating, best of the repeats; audiobench starts
each repeat with an empty feature cache. The check: both give the same FID (to 1e-6 relative).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from audiobench.benchmarks.common import Measurement, peak_rss_mib, stage_result
from audiobench.benchmarks.metrics_bench import make_run

from audiobench.metrics.fid import FID_KEY
from audiobench.models import LoadOptions, ModelZoo
from audiobench.scoring import distance


def tiny_inception_weights() -> Path:
    """The tiny profile's Inception weights file, written by the zoo into the cache."""
    return (
        ModelZoo("tiny", LoadOptions(torch.device("cpu"), torch.float32))
        .load("inception")
        .weights_path
    )


def torch_fidelity_fid(dir_a: Path, dir_b: Path, weights: Path) -> float:
    """torch-fidelity's own entry point with its defaults, as its README calls it."""
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=str(dir_a),
        input2=str(dir_b),
        fid=True,
        feature_extractor_weights_path=str(weights),
        cuda=torch.cuda.is_available(),
        verbose=False,
    )[FID_KEY]


def audiobench_fid(dir_a: Path, dir_b: Path, cache: Path) -> float:
    """`audiobench fid` on a cold feature cache (a new folder under `cache` each call)."""
    os.environ["AUDIOBENCH_CACHE"] = tempfile.mkdtemp(dir=cache)
    return distance(dir_a, dir_b, ["fid"], profile="tiny", device="auto")["fid"]["value"]


def best_of(sides: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple[float, float]]:
    """{side: (value, best seconds)}, the sides taking turns so that drifting machine load
    (other processes, thermal limits) falls on both alike."""
    values: dict[str, float] = {}
    seconds: dict[str, float] = {name: float("inf") for name in sides}
    for _ in range(repeats):
        for name, side in sides.items():
            start = time.perf_counter()
            values[name] = side()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return {name: (values[name], seconds[name]) for name in sides}


def run(quick: bool) -> dict:
    count, repeats = (4, 1) if quick else (24, 2)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = make_run(Path(folder), count)
        images, frames = run_dir / "images", Path(folder) / "data" / "frames"
        weights = tiny_inception_weights()
        sides = {
            "audiobench fid": lambda: audiobench_fid(images, frames, Path(folder)),
            "torch_fidelity.calculate_metrics": lambda: torch_fidelity_fid(images, frames, weights),
        }
        outcome = best_of(sides, repeats)
    (ours, ours_seconds), (theirs, theirs_seconds) = outcome.values()
    results = [Measurement(name, 2 * count, s, peak_rss_mib()) for name, (_, s) in outcome.items()]
    return stage_result(
        results,
        {"audiobench fid / torch-fidelity time": ours_seconds / theirs_seconds},
        abs(ours - theirs) <= 1e-6 * max(1.0, abs(theirs)),
        fid={"audiobench": ours, "torch-fidelity": theirs},
        target="audiobench fid time within 10% of torch-fidelity's (ratio <= 1.10)",
    )
