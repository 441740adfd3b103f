"""Generation throughput of `sd-text` at batch 1 (the published loops) and batch 8.

    python -m audiobench.benchmarks generation [--quick]

Tiny profile on the CPU, so it runs anywhere in seconds; the same code drives the paper-size
pipeline on a GPU. The check: both batchings give the same pixels up to float rounding (at most
one grey level apart).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from audiobench.benchmarks.common import measure, stage_result
from audiobench.methods.sd_text.method import SDTextConfig, StableDiffusionText

from audiobench.data import load_index
from audiobench.data.demo import write_demo_dataset
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext
from audiobench.runner import sample_seed


def run(quick: bool) -> dict:
    """Batch 1 and batch 8 images per second, after checking both give the same pixels."""
    count, steps = (8, 4) if quick else (16, 50)
    options = LoadOptions(torch.device("cpu"), torch.float32)
    method = StableDiffusionText(SDTextConfig(steps=steps))
    method.setup(MethodContext(ModelZoo("tiny", options), options.device, options.dtype))
    with tempfile.TemporaryDirectory() as folder:
        write_demo_dataset(Path(folder))
        samples = load_index(Path(folder))[:count]
    prompts = [method.prepare(sample) for sample in samples]
    seeds = [sample_seed(0, sample.id) for sample in samples]

    def in_batches(size: int) -> list:
        images = []
        for start in range(0, len(prompts), size):
            images += method.generate(prompts[start : start + size], seeds[start : start + size])
        return images

    largest = max(
        np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max()
        for a, b in zip(in_batches(1), in_batches(8), strict=True)
    )
    results = [
        measure(f"sd-text tiny, batch {size}", count, lambda s=size: in_batches(s), repeats=1)
        for size in (1, 8)
    ]
    ratio = results[1].items_per_second / results[0].items_per_second
    return stage_result(
        results,
        {"batch 8 / batch 1 throughput": ratio},
        largest <= 1,
        steps=steps,
        max_grey_level_difference=int(largest),
    )
