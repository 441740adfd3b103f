"""AudioToken training steps with cached crop features against recomputing them every step.

    python -m audiobench.benchmarks training [--quick]

The official training loop runs BEATs on the audio and the VAE encoder on the frame of every
sample at every step; audiobench computes both once per training crop and caches them. Both
loops train on the demo data with the tiny profile on the CPU, with the same seed, each in its
own process. The check: the losses of the first 5 steps agree to 1e-4.

The ratio is of training steps: a step's time is the interval between two successive requests
for a batch, so it holds the batch's features (cached or recomputed), the UNet's forward and
backward passes and the optimiser, and leaves out the fixed costs of a call (building the
models, the one-off feature cache fill, reported separately, and writing checkpoints). The
median over the steps is taken; whole-call times are reported beside it.
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from audiobench.benchmarks.common import Measurement, in_own_process, stage_result
from audiobench.methods.audiotoken.method import AudioTokenTrainConfig
from audiobench.methods.audiotoken.training import CropFeatures, train_audiotoken

from audiobench.data import read_frame
from audiobench.data.demo import write_demo_dataset
from audiobench.data.training import frame_tensor
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext, TrainRequest


class RecomputedCropFeatures:
    """The official loop's way: BEATs and the VAE encoder on the batch's crops at every step."""

    def __init__(self, context: MethodContext, crops, frame_size: tuple[int, int]) -> None:
        self.crops, self.frame_size = crops, frame_size
        self.beats = context.models.load("beats")
        self.vae = context.models.load("sd").vae

    @torch.no_grad()
    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [self.crops[i] for i in index.tolist()]
        audio = torch.from_numpy(np.stack([crop.read_audio() for crop in chosen]))
        frames = torch.stack(
            [frame_tensor(read_frame(c.frame_path), self.frame_size) for c in chosen]
        )
        posterior = self.vae.encode(frames.to(self.vae.device, self.vae.dtype)).latent_dist
        moments = torch.cat([posterior.mean, posterior.logvar], dim=1).float().cpu()
        return self.beats.layer_features(audio).cpu(), moments


class StepClock:
    """A crop-feature source that notes when each training step asks for its batch."""

    def __init__(self, source) -> None:
        self.source = source
        self.requests: list[float] = []

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.requests.append(time.perf_counter())
        return self.source.batch(index)


def timed_training(
    data: Path, out: Path, steps: int, batch_size: int, source
) -> tuple[float, list[float]]:
    """Seconds of the whole training call and of each step but the last."""
    options = LoadOptions(torch.device("cpu"), torch.float32)
    context = MethodContext(ModelZoo("tiny", options), options.device, options.dtype)
    request = TrainRequest(
        method="audiotoken",
        data_dir=data,
        split="train",
        seed=0,
        mixed_precision="no",
        config=AudioTokenTrainConfig(steps=steps, batch_size=batch_size, checkpoint_every=steps),
    )
    out.mkdir(parents=True)
    make = source or partial(CropFeatures, batch_size=batch_size, audio_encoder="beats")
    clocks: list[StepClock] = []

    def clocked(*arguments) -> StepClock:
        clocks.append(StepClock(make(*arguments)))
        return clocks[0]

    start = time.perf_counter()
    train_audiotoken(context, request, out, classification_loss=False, crop_features=clocked)
    return time.perf_counter() - start, np.diff(clocks[0].requests).tolist()


def run(quick: bool) -> dict:
    """Cached against recomputed crop features; the feature cache is the stage's scratch one."""
    steps, batch = (3, 2) if quick else (20, 4)
    with tempfile.TemporaryDirectory() as folder:
        root, demo = Path(folder), Path(folder) / "demo"
        write_demo_dataset(demo)
        (fill, _), _ = in_own_process(timed_training, demo, root / "fill", 1, batch, None)
        runs = {
            "recompute BEATs + VAE every step": ("recomputed", RecomputedCropFeatures),
            "cached crop features": ("cached", None),
        }
        results, calls = [], {}
        for name, (out, source) in runs.items():
            (seconds, intervals), rss = in_own_process(
                timed_training, demo, root / out, steps, batch, source
            )
            median = float(np.median(intervals))
            results.append(Measurement(f"{name}: median step", 1, median, rss))
            calls[name] = {"steps": steps, "seconds": round(seconds, 2)}
        losses = [pd.read_csv(root / out / "loss.csv").loss for out, _ in runs.values()]
    first = min(5, steps)
    gap = float(np.abs(losses[0][:first] - losses[1][:first]).max())
    return stage_result(
        results,
        {"cached / recomputed steps per second": results[0].seconds / results[1].seconds},
        gap < 1e-4,
        whole_calls=calls,
        cache_fill_and_one_step_seconds=round(fill, 2),
        max_loss_difference_first_steps=gap,
    )
