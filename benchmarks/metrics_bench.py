"""`audiobench evaluate` (AIS + IIS + AIC) against the per-image loops of published scripts.

    python -m audiobench.benchmarks evaluation [--quick]

Both sides score the same synthetic run (N demo-style clips: audio, reference frame and a
"generated" picture of a random demo class) with the same tiny-profile models on the CPU:

- audiobench: `evaluate()` with a cold feature cache (batched encoders, vectorised win rates),
  then again with the warm cache, then with only the dataset's features cached (what evaluating
  another method's run on the same test set costs);
- reference: one image (or clip, or name) per forward pass and a Python double loop over all
  pairs for the win rates, the way published evaluation scripts are written.

The check: both give the same scores to 0.01 points (batch-1 and batched encoders differ in
float rounding, which can flip a few near ties).
Each side runs in its own process so its peak memory is its own; times include building the
models but not importing Python packages.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from audiobench.benchmarks.common import Measurement, in_own_process, stage_result, timed_call
from audiobench.benchmarks.reference_metrics import reference_scores
from PIL import Image

from audiobench.data import SAMPLE_RATE, write_index
from audiobench.data.demo import CLASSES, synthetic_clip
from audiobench.store import RunDirectory, atomic_write_bytes, png_bytes

METRICS = ("ais", "iis", "aic")
IMPORTS = ("open_clip", "timm", "audiobench.evaluation")


def make_run(root: Path, count: int) -> Path:
    """A dataset and a finished run of `count` demo-style samples."""
    rng = np.random.default_rng(0)
    labels = list(CLASSES)
    data, run = root / "data", RunDirectory(root / "runs" / "synthetic")
    for folder in (data / "audio", data / "frames", run.images_dir):
        folder.mkdir(parents=True)
    rows, records = [], []
    for index in range(count):
        sample_id = f"sample{index:05d}_000000"
        label = labels[index % len(labels)]
        audio, frame = synthetic_clip(rng, label)
        _, generated = synthetic_clip(rng, labels[int(rng.integers(len(labels)))])
        soundfile.write(data / "audio" / f"{sample_id}.wav", audio, SAMPLE_RATE)
        atomic_write_bytes(data / "frames" / f"{sample_id}.png", png_bytes(frame))
        atomic_write_bytes(run.image_path(sample_id), png_bytes(generated.resize((64, 64))))
        rows.append(
            {
                "id": sample_id,
                "label": label,
                "split": "test",
                "audio": f"audio/{sample_id}.wav",
                "audio_start": 2.5,
                "audio_end": 7.5,
                "frame": f"frames/{sample_id}.png",
            }
        )
        records.append(
            {
                "id": sample_id,
                "label": label,
                "status": "ok",
                "error": None,
                "image": f"images/{sample_id}.png",
                "seed": index,
                "seconds": 0.0,
            }
        )
    write_index(data, rows)
    run.write_samples(pd.DataFrame(records))
    run.write_run(
        {"dataset": str(data), "split": "test", "profile": "tiny", "method": "bench", "seed": 0}
    )
    return run.path


def _reencode_images(run_dir: Path) -> None:
    """New files with the same pixels: their content hashes, and so their cache keys, are new
    (what another method's run is to the feature cache), while the scores stay comparable."""
    for path in sorted(RunDirectory(run_dir).images_dir.glob("*.png")):
        with Image.open(path) as image:
            pixels = image.copy()
        pixels.save(path, compress_level=0)


def audiobench_scores(run_dir: Path) -> dict[str, float]:
    from audiobench.evaluation import EvaluateSettings, evaluate

    result = evaluate(EvaluateSettings(run_dir, metrics=METRICS, device="cpu"))
    return {name: result["metrics"][name]["value"] for name in METRICS}


def run(quick: bool) -> dict:
    """`evaluate` with nothing cached, with everything cached, and as the evaluation of a new
    method's run on the same dataset (the dataset's features cached, the images' not), against
    the reference; each in its own process."""
    count = 12 if quick else 500
    with tempfile.TemporaryDirectory() as folder:
        run_dir = make_run(Path(folder), count)
        sides = {  # the cold run first: it fills the feature caches that the others read
            "audiobench evaluate, cold cache": audiobench_scores,
            "audiobench evaluate, warm cache": audiobench_scores,
            "audiobench evaluate, new run (dataset cached)": audiobench_scores,
            "reference: per-image, double loop": reference_scores,
        }
        scores, results = [], []
        for name, function in sides.items():
            if "new run" in name:
                _reencode_images(run_dir)
            (values, seconds), rss = in_own_process(timed_call, IMPORTS, function, run_dir)
            scores.append(values)
            results.append(Measurement(name, count, seconds, rss))
    # Encoders at batch 1 and in batches differ in float rounding (~1e-7), which can flip a few
    # near-tie comparisons out of N^2 (each worth 100 / (N (N - 1)) points).
    differences = {name: abs(scores[0][name] - scores[-1][name]) for name in METRICS}
    slow = results[-1].seconds
    ratios = {
        "cold / reference speed": slow / results[0].seconds,
        "warm / reference speed": slow / results[1].seconds,
        "new run / reference speed": slow / results[2].seconds,
    }
    check = all(d < 0.01 for d in differences.values()) and scores[0] == scores[1] == scores[2]
    return stage_result(results, ratios, check, scores=scores[0], differences=differences)
