"""Generation throughput of `sd-text` at batch 1 (the published loops) and batch 8.

    python -m benchmarks.generation_bench [--json] [--images 16] [--steps 50]

Tiny profile on the CPU, so it runs anywhere in seconds; the same code drives the paper-size
pipeline on a GPU. Both batchings must give the same pixels (up to float rounding), which is
checked before any number is printed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from audiobench.data import load_index
from audiobench.data.demo import write_demo_dataset
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext
from audiobench.runner import sample_seed
from benchmarks.common import measure, report
from methods.sd_text import SDTextConfig, StableDiffusionText


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()

    options = LoadOptions(torch.device("cpu"), torch.float32)
    method = StableDiffusionText(SDTextConfig(steps=arguments.steps))
    method.setup(MethodContext(ModelZoo("tiny", options), options.device, options.dtype))
    with tempfile.TemporaryDirectory() as folder:
        write_demo_dataset(Path(folder))
        samples = load_index(Path(folder))[: arguments.images]
    prompts = [method.prepare(sample) for sample in samples]
    seeds = [sample_seed(0, sample.id) for sample in samples]

    def in_batches(size: int) -> list:
        images = []
        for start in range(0, len(prompts), size):
            images += method.generate(prompts[start : start + size], seeds[start : start + size])
        return images

    single, batched = in_batches(1), in_batches(8)
    largest = max(
        np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max()
        for a, b in zip(single, batched, strict=True)
    )
    assert largest <= 1, f"batch 1 and batch 8 images differ by {largest} grey levels"
    results = [
        measure("sd-text tiny, batch 1", len(prompts), lambda: in_batches(1)),
        measure("sd-text tiny, batch 8", len(prompts), lambda: in_batches(8)),
    ]
    ratio = results[1].items_per_second / results[0].items_per_second
    report(results, {"batch 8 / batch 1 throughput": ratio}, arguments.json)


if __name__ == "__main__":
    main()
