"""`audiobench evaluate` (AIS + IIS + AIC) against the per-image loops of published scripts.

    python -m benchmarks.metrics_bench [--n 500] [--json]

Both sides score the same synthetic run (N demo-style clips: audio, reference frame and a
"generated" picture of a random demo class) with the same tiny-profile models on the CPU:

- audiobench: `evaluate()` with a cold feature cache (batched encoders, vectorised win rates),
  then again with the warm cache;
- reference: one image (or clip, or name) per forward pass and a Python double loop over all
  pairs for the win rates, the way published evaluation scripts are written.

It checks that both give the same scores (to 0.01 points: batch-1 and batched encoders differ
in float rounding, which can flip a few near ties) before printing times, peak memory and the
ratio.
Each side runs in its own process so its peak memory is its own; times include building the
models but not importing Python packages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch
from PIL import Image

from audiobench.data import SAMPLE_RATE, write_index
from audiobench.data.demo import CLASSES, synthetic_clip
from audiobench.store import RunDirectory, atomic_write_bytes, png_bytes
from benchmarks.common import Measurement, in_own_process, report

METRICS = ("ais", "iis", "aic")


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


def audiobench_scores(run_dir: Path) -> dict[str, float]:
    from audiobench.evaluation import EvaluateSettings, evaluate

    result = evaluate(EvaluateSettings(run_dir, metrics=METRICS, device="cpu"))
    return {name: result["metrics"][name]["value"] for name in METRICS}


def reference_scores(run_dir: Path) -> dict[str, float]:
    """The published-script way: one input per forward pass, a double loop over pairs."""
    from audiobench.data import load_index
    from audiobench.models import LoadOptions, ModelZoo
    from audiobench.models.classifier import class_names

    zoo = ModelZoo("tiny", LoadOptions(torch.device("cpu"), torch.float32))
    samples = load_index(RunDirectory(run_dir).read_run()["dataset"], "test")
    clip_b32, clip_l14 = zoo.load("clip_b32"), zoo.load("clip_l14")
    wav2clip, classifier = zoo.load("wav2clip"), zoo.load("classifier")
    generated = [Image.open(run_dir / "images" / f"{s.id}.png").convert("RGB") for s in samples]
    frames = [Image.open(s.frame_path).convert("RGB") for s in samples]

    def clip_image(encoder, image):
        with torch.no_grad():
            embedding = encoder.model.encode_image(encoder.preprocess(image).unsqueeze(0))
        return torch.nn.functional.normalize(embedding, dim=-1)[0]

    def clip_texts(texts):
        with torch.no_grad():
            embedding = clip_l14.model.encode_text(clip_l14.tokenizer(texts))
        return torch.nn.functional.normalize(embedding, dim=-1)

    def audio_embedding(sample):
        with torch.no_grad():
            embedding = wav2clip(torch.from_numpy(sample.read_audio()).unsqueeze(0))
        return torch.nn.functional.normalize(embedding, dim=-1)[0]

    def top1(image):
        with torch.no_grad():
            return int(classifier.model(classifier.transform(image).unsqueeze(0)).argmax())

    image_b32 = [clip_image(clip_b32, image) for image in generated]
    audio = [audio_embedding(sample) for sample in samples]
    image_l14 = [clip_image(clip_l14, image) for image in generated]
    frame_l14 = [clip_image(clip_l14, frame) for frame in frames]

    def loop_win_rate(query, paired):
        wins = []
        for i in range(len(query)):
            own = float(torch.dot(query[i].double(), paired[i].double()))
            total = 0.0
            for j in range(len(query)):
                if j != i:
                    other = float(torch.dot(query[i].double(), paired[j].double()))
                    total += 1.0 if own > other else 0.5 if own == other else 0.0
            wins.append(total / (len(query) - 1))
        return 100 * float(np.mean(wins))

    agree = []
    for image, sample in zip(generated, samples, strict=True):
        name = class_names()[top1(image)]
        pair = clip_texts([name, sample.label]).double()
        same = name.strip().lower() == sample.label.strip().lower()
        agree.append(same or float(pair[0] @ pair[1]) > 0.75)
    return {
        "ais": loop_win_rate(image_b32, audio),
        "iis": loop_win_rate(image_l14, frame_l14),
        "aic": 100 * float(np.mean(agree)),
    }


def timed(function, run_dir: Path) -> tuple[dict[str, float], float]:
    """(scores, seconds) of one side; imports are not part of the timed work."""
    import open_clip  # noqa: F401
    import timm  # noqa: F401

    import audiobench.evaluation  # noqa: F401

    start = time.perf_counter()
    scores = function(run_dir)
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="samples in the synthetic run")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.environ["AUDIOBENCH_CACHE"] = str(Path(folder) / "cache")  # a cold feature cache
        run_dir = make_run(Path(folder), arguments.n)
        (ours, cold), cold_rss = in_own_process(timed, audiobench_scores, run_dir)
        (_, warm), warm_rss = in_own_process(timed, audiobench_scores, run_dir)
        (theirs, slow), slow_rss = in_own_process(timed, reference_scores, run_dir)
    # Encoders at batch 1 and in batches differ in float rounding (~1e-7), which can flip a few
    # near-tie comparisons out of N^2 (each worth 100 / (N (N - 1)) points).
    differences = {name: abs(ours[name] - theirs[name]) for name in METRICS}
    for name, difference in differences.items():
        assert difference < 0.01, f"{name}: {ours[name]} (audiobench) != {theirs[name]}"
    results = [
        Measurement("reference: per-image, double loop", arguments.n, slow, slow_rss),
        Measurement("audiobench evaluate, cold cache", arguments.n, cold, cold_rss),
        Measurement("audiobench evaluate, warm cache", arguments.n, warm, warm_rss),
    ]
    ratios = {"cold / reference speed": slow / cold, "warm / reference speed": slow / warm}
    report(results, ratios, arguments.json, extra={"scores": ours, "differences": differences})


if __name__ == "__main__":
    main()
