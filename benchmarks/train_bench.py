"""AudioToken training steps with cached crop features against recomputing them every step.

    python -m benchmarks.train_bench [--steps 30] [--batch-size 4] [--json]

The official training loop runs BEATs on the audio and the VAE encoder on the frame of every
sample at every step; audiobench computes both once per training crop and caches them. Both
loops train on the demo data with the tiny profile on the CPU, with the same seed; the losses of
the first steps must agree before any time is printed. Times exclude the one-off feature cache
fill (reported separately) and model building.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audiobench.data import read_frame
from audiobench.data.demo import write_demo_dataset
from audiobench.data.training import frame_tensor
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext
from audiobench.trainer import TrainSettings
from benchmarks.common import Measurement, in_own_process, report
from methods.audiotoken.training import train_audiotoken


class RecomputedCropFeatures:
    """The official loop's way: BEATs and the VAE encoder on the batch's crops at every step."""

    def __init__(self, context: MethodContext, crops, image_size: int) -> None:
        self.crops, self.image_size = crops, image_size
        self.beats = context.models.load("beats")
        self.vae = context.models.load("sd").vae

    @torch.no_grad()
    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [self.crops[i] for i in index.tolist()]
        audio = torch.from_numpy(np.stack([crop.read_audio() for crop in chosen]))
        frames = torch.stack(
            [frame_tensor(read_frame(c.frame_path), self.image_size) for c in chosen]
        )
        posterior = self.vae.encode(frames).latent_dist
        moments = torch.cat([posterior.mean, posterior.logvar], dim=1)
        return self.beats.layer_features(audio), moments


def timed_training(data: Path, out: Path, steps: int, batch_size: int, source) -> float:
    options = LoadOptions(torch.device("cpu"), torch.float32)
    context = MethodContext(ModelZoo("tiny", options), options.device, options.dtype)
    settings = TrainSettings(
        method="audiotoken",
        data_dir=data,
        out=out,
        profile="tiny",
        steps=steps,
        batch_size=batch_size,
        checkpoint_every=steps,
    )
    out.mkdir(parents=True)
    start = time.perf_counter()
    train_audiotoken(context, settings, out, classification_loss=False, crop_features=source)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["AUDIOBENCH_CACHE"] = str(root / "cache")  # inherited by the spawned runs
        write_demo_dataset(root / "demo")
        demo, steps, batch = root / "demo", arguments.steps, arguments.batch_size
        fill, _ = in_own_process(timed_training, demo, root / "fill", 1, batch, None)
        cached, cached_rss = in_own_process(
            timed_training, demo, root / "cached", steps, batch, None
        )
        recomputed, recomputed_rss = in_own_process(
            timed_training, demo, root / "recomputed", steps, batch, RecomputedCropFeatures
        )
        losses = [pd.read_csv(root / name / "loss.csv").loss for name in ("cached", "recomputed")]
    first = min(5, arguments.steps)
    gap = float(np.abs(losses[0][:first] - losses[1][:first]).max())
    assert gap < 1e-4, f"the two loops' losses differ by {gap} in the first {first} steps"
    results = [
        Measurement("recompute BEATs + VAE every step", steps, recomputed, recomputed_rss),
        Measurement("cached crop features", steps, cached, cached_rss),
    ]
    report(
        results,
        {"cached / recomputed steps per second": recomputed / cached},
        arguments.json,
        extra={
            "cache fill + 1 step (s)": round(fill, 2),
            f"max loss difference, first {first} steps": gap,
        },
    )


if __name__ == "__main__":
    main()
