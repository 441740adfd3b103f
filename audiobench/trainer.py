"""`audiobench train`: hands a method its training data, models and settings.

The core knows nothing of how a method trains; it resolves the models (profile, device,
precision), checks the data and the output folder, and calls `Method.train`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from audiobench.data import load_index
from audiobench.distributed import join
from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext, build_config, get_method
from audiobench.store import make_directory

PRECISIONS = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class TrainSettings:
    """Options of `audiobench train`, with the paper's defaults."""

    method: str
    data_dir: Path
    out: Path
    split: str = "train"
    profile: str = "paper"
    steps: int = 60_000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 8e-5
    mixed_precision: str = "no"
    checkpoint_every: int = 1000
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    weights_dir: Path | None = None


def train(settings: TrainSettings) -> Path:
    """Train a method; returns the folder holding its final weights."""
    for name in ("steps", "batch_size", "grad_accum", "checkpoint_every"):
        if getattr(settings, name) < 1:
            raise AudiobenchError(f"--{name.replace('_', '-')} must be at least 1")
    if not (math.isfinite(settings.lr) and settings.lr > 0):
        raise AudiobenchError(f"--lr must be a positive number, not {settings.lr}")
    if settings.mixed_precision not in PRECISIONS:
        raise AudiobenchError(f"--mixed-precision must be one of {', '.join(PRECISIONS)}")
    load_index(settings.data_dir, settings.split)  # fails early on a bad dataset
    method_class = get_method(settings.method)
    processes, device = join(settings.device)
    if device.type == "cpu" and settings.mixed_precision == "fp16":
        raise AudiobenchError("--mixed-precision fp16 needs a GPU; use bf16 or no on the CPU")
    zoo = ModelZoo(
        settings.profile,
        LoadOptions(device, PRECISIONS[settings.mixed_precision]),
        settings.weights_dir,
    )
    zoo.require(method_class.roles)
    out = make_directory(settings.out)
    method = method_class(build_config(method_class, {}))
    context = MethodContext(zoo, device, zoo.options.dtype, processes=processes)
    return method.train(context, settings, out)
