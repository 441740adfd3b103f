"""GPU benchmark of the paper-size models, random weights.

`python -m audiobench.benchmarks.gpu --json OUT`.

One command on one GPU, under 10 minutes, no downloads. Every model comes from audiobench's
model zoo under the `paper-random` profile (the published architectures and configs with seeded
random weights; speed does not depend on the weights' values), and every row times audiobench's
own code: the zoo's pipelines, the AudioToken trainer, the metric encoders, BEATs' features.
Four sections, each a few rows of a table and of the JSON:

1. generation: images/s of the zoo's SD v1.4 pipeline at 512 px, 50 PNDM steps, guidance 7.5,
   batch 1 and 8, fp16 and bf16, and the reference fp32 batch 1; a reduced number of steps is
   run and scaled to 50 from the measured time per UNet call (the fixed costs, text encoder
   and VAE decoder, are kept as run);
2. training: steps/s of audiobench's AudioToken trainer (`train_audiotoken`, each row in its
   own process) at batch 8 on the demo data, fp32 and fp16/bf16 mixed precision with its cached
   crop features, and fp16 with BEATs (fp32) and the VAE encoder run at every step, the way the
   official loop does; a step is the median interval between two batch requests;
3. evaluation: CLIP ViT-L/14 image embeddings (`ClipEncoder.embed_pixels`) + Inception
   features, one image per forward pass in fp32 (the reference) against batches of 64;
4. BEATs layer features of 5 s clips (`BeatsFeatures.layer_features`), batch 1 against 16.

`--device cpu --smoke` runs the same code on the `tiny` profile at toy sizes (seconds), so the
benchmark is tested without a GPU. A global time guard (`--time-limit`, 8.5 minutes) records
the rows it had no time for as skipped; the JSON is rewritten after every row, so a run killed
from outside still leaves what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from audiobench.environment import package_versions
from audiobench.models.zoo import LoadOptions

PROMPT = "A photo of a dog barking"
GUIDANCE = 7.5
NOMINAL_STEPS = 50
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 5.0
DEFAULT_TIME_LIMIT_S = 510.0  # 8.5 minutes: leaves room under a 10-minute limit
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Stable row keys: the batch sizes in the names differ between the full and the smoke run.
ROW_KEYS = (
    "generation/fp32/single",
    "generation/fp16/single",
    "generation/fp16/batched",
    "generation/bf16/single",
    "generation/bf16/batched",
    "training/fp32",
    "training/fp16-autocast",
    "training/bf16-autocast",
    "training/fp16-recomputed",
    "evaluation/single",
    "evaluation/batched",
    "beats/single",
    "beats/batched",
)


@dataclass(frozen=True)
class Sizes:
    """What one run measures: the paper's sizes, or toy sizes for `--smoke`."""

    smoke: bool
    image_size: int
    measured_steps: int
    generation_batch: int
    train_batch: int
    train_steps: int
    eval_images: int
    beats_clips: int
    repeats: int
    warmups: int


FULL = Sizes(False, 512, 10, 8, 8, 5, 64, 16, repeats=2, warmups=1)
SMOKE = Sizes(True, 64, 2, 8, 8, 1, 4, 4, repeats=1, warmups=1)  # tests the code, not speed


@dataclass
class Row:
    """One measurement; `status` is ok, skipped (time guard) or an error message."""

    key: str
    section: str
    name: str
    precision: str
    batch: int
    items: int = 0
    seconds: float | None = None
    items_per_second: float | None = None
    peak_memory_mib: float | None = None
    tf32_matmul: bool | None = None  # as it was during the row
    status: str = "ok"
    note: str = ""


@dataclass
class Bench:
    """Runs rows against a deadline, keeps the results and rewrites the JSON after each row."""

    device: torch.device
    sizes: Sizes
    deadline: float
    json_path: Path | None
    header: dict[str, Any]
    rows: dict[str, Row] = field(default_factory=dict)
    section_seconds: dict[str, float] = field(default_factory=dict)

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def measure(self, row: Row, run: Callable[[], tuple[int, float]]) -> Row:
        """`run()` -> (items, seconds); records peak memory, the time guard and any error."""
        if self.expired():
            row.status = "skipped: time guard"
        else:
            free_memory(self.device)
            row.tf32_matmul = torch.backends.cuda.matmul.allow_tf32
            try:
                row.items, row.seconds = run()
                row.items_per_second = row.items / row.seconds
            except Exception as error:  # one failing row must not lose the others
                row.status = f"error: {type(error).__name__}: {str(error)[:300]}"
            row.peak_memory_mib = peak_memory_mib(self.device)
        self.rows[row.key] = row
        print(format_row(row), flush=True)
        self.write()
        return row

    def fail_remaining(self, section: str, reason: str) -> None:
        """Mark a section's rows that never ran (its models failed to build, or no time)."""
        for key in ROW_KEYS:
            if key.startswith(f"{section}/") and key not in self.rows:
                self.rows[key] = Row(key, section, key, "", 0, status=reason)

    def payload(self) -> dict[str, Any]:
        rows = [asdict(self.rows[key]) for key in ROW_KEYS if key in self.rows]
        return {
            **self.header,
            "section_seconds": self.section_seconds,  # model building included
            "rows": rows,
            "ratios": ratios(self.rows),
        }

    def write(self) -> None:
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.payload(), indent=2) + "\n")


# ---- timing ---------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Kernels run asynchronously: a timing is only true once the device has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    """Drop the previous row's cached blocks and peak so each row's peak memory is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def clock(work: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of `work`, synchronized on both sides."""
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def best_of(run: Callable[[], float], repeats: int, warmups: int) -> float:
    """Fastest of `repeats` timed runs after `warmups` untimed ones (kernel selection, caches)."""
    for _ in range(warmups):
        run()
    return min(run() for _ in range(repeats))


def timed_row(bench: Bench, row: Row, items: int, work: Callable[[], object]) -> Row:
    """A row whose `items` are processed by one call of `work`: its best synchronized time."""
    sizes = bench.sizes

    def run() -> tuple[int, float]:
        return items, best_of(lambda: clock(work, bench.device), sizes.repeats, sizes.warmups)

    return bench.measure(row, run)


# ---- models ---------------------------------------------------------------------------------


def zoo_model(role: str, sizes: Sizes, device: torch.device):
    """A role as audiobench builds it: the `paper-random` profile (published architectures and
    configs, seeded random weights: speed does not depend on the weights' values), or `tiny`
    for `--smoke`. Parameters are created directly on the device: initialising ~1.5 B random
    weights is seconds on a GPU and minutes on a few CPU cores."""
    from audiobench.models import ModelZoo
    from audiobench.models.inventory import roles_in_use

    roles_in_use()  # registers the methods' roles
    profile = "tiny" if sizes.smoke else "paper-random"
    with torch.device(device):
        return ModelZoo(profile, LoadOptions(device, torch.float32)).load(role)


def sd_pipeline(sizes: Sizes, device: torch.device):
    return zoo_model("sd", sizes, device)


def beats_features(sizes: Sizes, device: torch.device):
    return zoo_model("beats", sizes, device)


def inception_features(sizes: Sizes, device: torch.device):
    return zoo_model("inception", sizes, device)


# ---- 1. generation --------------------------------------------------------------------------


class StepClock:
    """A `callback_on_step_end` that timestamps (synchronized) the end of every UNet call."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def __call__(self, pipeline, step: int, timestep, tensors: dict) -> dict:
        synchronize(self.device)
        self.times.append(time.perf_counter())
        return tensors


def unet_calls(pipeline, steps: int) -> int:
    """UNet calls of a PNDM run of `steps` steps (PLMS without PRK runs steps + 1)."""
    scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config)
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def extrapolate(total: float, step_ends: list[float], target_calls: int) -> float:
    """Seconds of a run with `target_calls` UNet calls, from one with len(step_ends) calls:
    the run's own time plus the missing calls at the measured time per call."""
    per_call = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1)
    return total + (target_calls - len(step_ends)) * per_call


def generate_seconds(pipeline, sizes: Sizes, batch: int, steps: int, device) -> float:
    """Seconds for `batch` images at NOMINAL_STEPS, from one run of `steps` steps."""
    step_clock = StepClock(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random fp16 weights may decode NaN pixels
        total = clock(
            lambda: pipeline(
                prompt=[PROMPT] * batch,
                height=sizes.image_size,
                width=sizes.image_size,
                num_inference_steps=steps,
                guidance_scale=GUIDANCE,
                generator=torch.Generator("cpu").manual_seed(0),
                callback_on_step_end=step_clock,
            ),
            device,
        )
    return extrapolate(total, step_clock.times, unet_calls(pipeline, NOMINAL_STEPS))


def generation_row(bench: Bench, pipeline, precision: str, batch: int) -> Row:
    sizes, device = bench.sizes, bench.device
    kind = "single" if batch == 1 else "batched"
    reference = " (reference)" if precision == "fp32" else ""
    name = f"generate {precision} batch {batch}{reference}"
    row = Row(f"generation/{precision}/{kind}", "generation", name, precision, batch)
    row.note = f"{sizes.measured_steps} PNDM steps measured, scaled to {NOMINAL_STEPS}"

    def run() -> tuple[int, float]:
        for _ in range(sizes.warmups):  # kernel selection at this shape and dtype, 2 steps
            generate_seconds(pipeline, sizes, batch, 2, device)
        seconds = best_of(
            lambda: generate_seconds(pipeline, sizes, batch, sizes.measured_steps, device),
            sizes.repeats,
            warmups=0,
        )
        return batch, seconds

    return bench.measure(row, run)


def bench_generation(bench: Bench) -> None:
    """fp32 batch 1 (reference), then fp16 and bf16 at batch 1 and the generation batch; the
    pipeline's weights are converted in place, so only one copy is ever on the device."""
    from diffusers.utils import logging

    logging.set_verbosity_error()  # in-place casts of random weights warn about float32 modules
    pipeline = sd_pipeline(bench.sizes, bench.device)
    bench.header["attention_processor"] = type(
        next(iter(pipeline.unet.attn_processors.values()))
    ).__name__
    batched = bench.sizes.generation_batch
    for precision, batches in (("fp32", (1,)), ("fp16", (1, batched)), ("bf16", (1, batched))):
        pipeline.to(dtype=PRECISIONS[precision])
        for batch in batches:
            generation_row(bench, pipeline, precision, batch)


# ---- 2. training ----------------------------------------------------------------------------


def trainer_intervals(
    sizes: Sizes, device: torch.device, data: Path, out: Path, precision: str, source
) -> tuple[list[float], float | None]:
    """Run audiobench's AudioToken trainer as `audiobench train` sets it up (frozen models in
    the training precision, accelerate's autocast), in a process of its own (accelerate allows
    one precision per process); the intervals between successive batch requests, each one
    training step, and the device's peak memory in MiB. `source` replaces the cached crop
    features (None: audiobench's own cache)."""
    from audiobench.benchmarks.train_bench import StepClock as BatchClock
    from audiobench.methods.audiotoken.method import AudioTokenTrainConfig
    from audiobench.methods.audiotoken.training import CropFeatures, train_audiotoken

    from audiobench.models import ModelZoo
    from audiobench.registry import MethodContext, TrainRequest
    from audiobench.trainer import PRECISIONS as TRAIN_PRECISIONS

    if sizes.smoke and device.type == "cpu":
        torch.set_num_threads(1)  # as main() does for the smoke run
    mixed = "no" if precision == "fp32" else precision
    profile = "tiny" if sizes.smoke else "paper-random"
    with torch.device(device):
        zoo = ModelZoo(profile, LoadOptions(device, TRAIN_PRECISIONS[mixed]))
    steps = sizes.train_steps + sizes.warmups + 1  # n + 1 batch requests give n intervals
    request = TrainRequest(
        method="audiotoken",
        data_dir=data,
        split="train",
        seed=0,
        mixed_precision=mixed,
        config=AudioTokenTrainConfig(
            steps=steps, batch_size=sizes.train_batch, checkpoint_every=steps
        ),
    )
    make = source or partial(CropFeatures, batch_size=sizes.train_batch, audio_encoder="beats")
    clocks: list[BatchClock] = []

    def clocked(*arguments) -> BatchClock:
        clocks.append(BatchClock(make(*arguments)))
        return clocks[0]

    out.mkdir(parents=True)
    context = MethodContext(zoo, device, zoo.options.dtype)
    free_memory(device)
    train_audiotoken(context, request, out, classification_loss=False, crop_features=clocked)
    synchronize(device)
    return np.diff(clocks[0].requests).tolist(), peak_memory_mib(device)


def training_row(bench: Bench, data: Path, out: Path, precision: str, source=None) -> Row:
    """Steps/s of audiobench's trainer: the median interval between batch requests after the
    warm-up steps (model building, the one-off feature cache fill and checkpoints excluded)."""
    from audiobench.benchmarks.common import in_own_process

    sizes = bench.sizes
    if source is not None:
        key, what = "training/fp16-recomputed", "fp16 autocast, BEATs + VAE every step"
    elif precision == "fp32":
        key, what = "training/fp32", "fp32"
    else:
        key, what = f"training/{precision}-autocast", f"{precision} autocast"
    row = Row(key, "training", f"train step batch {sizes.train_batch} {what}", precision, 0)
    row.batch = sizes.train_batch
    row.note = "items are steps of audiobench's trainer on the demo data" + (
        "; BEATs (fp32) and the VAE encoder run at every step, as the official loop does"
        if source is not None
        else "; BEATs features and VAE posteriors cached once per crop"
    )
    peak: list[float | None] = []

    def run() -> tuple[int, float]:
        (intervals, device_peak), _ = in_own_process(
            trainer_intervals, sizes, bench.device, data, out, precision, source
        )
        peak.append(device_peak)
        measured = intervals[sizes.warmups :]
        return len(measured), float(np.median(measured)) * len(measured)

    bench.measure(row, run)
    if peak:  # the trainer's process, not this one, held the device memory
        row.peak_memory_mib = peak[0]
        bench.write()
    return row


def bench_training(bench: Bench) -> None:
    from audiobench.benchmarks.train_bench import RecomputedCropFeatures

    from audiobench.data.demo import write_demo_dataset

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "demo"
        write_demo_dataset(data)
        for precision in ("fp32", "fp16", "bf16"):
            training_row(bench, data, Path(folder) / precision, precision)
        training_row(bench, data, Path(folder) / "recomputed", "fp16", RecomputedCropFeatures)


# ---- 3. evaluation --------------------------------------------------------------------------


def evaluation_row(bench: Bench, clip, inception, images: torch.Tensor, batch: int) -> Row:
    """The metric models' calls that `audiobench evaluate` makes (`ClipEncoder.embed_pixels`
    on CLIP's own preprocessing, `InceptionFeatures.features` on uint8 images), per image or in
    batches. CLIP's preprocessing runs on the CPU beside the models in `evaluate`; here it is
    done once beforehand."""
    kind = "single" if batch == 1 else "batched"
    reference = " (reference)" if batch == 1 else ""
    name = f"CLIP L/14 + Inception fp32 batch {batch}{reference}"
    row = Row(f"evaluation/{kind}", "evaluation", name, "fp32", batch)
    row.note = "generated-size uint8 images on the device; CLIP's preprocessing done beforehand"
    pixels = clip.pixels(
        [Image.fromarray(array) for array in images.permute(0, 2, 3, 1).cpu().numpy()]
    )

    def work() -> None:
        for chunk, prepared in zip(images.split(batch), pixels.split(batch), strict=True):
            clip.embed_pixels(prepared)
            inception.features(chunk)

    return timed_row(bench, row, len(images), work)


def bench_evaluation(bench: Bench) -> None:
    sizes, device = bench.sizes, bench.device
    clip = zoo_model("clip_l14", sizes, device)
    inception = inception_features(sizes, device)
    shape = (sizes.eval_images, 3, sizes.image_size, sizes.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    for batch in (1, sizes.eval_images):
        evaluation_row(bench, clip, inception, images, batch)


# ---- 4. BEATs -------------------------------------------------------------------------------


def beats_row(bench: Bench, beats, audio: torch.Tensor, batch: int) -> Row:
    kind = "single" if batch == 1 else "batched"
    name = f"BEATs layers 4/8/12, 5 s clips, fp32 batch {batch}"
    row = Row(f"beats/{kind}", "beats", name, "fp32", batch)

    def work() -> None:
        for chunk in audio.split(batch):
            beats.layer_features(chunk)

    return timed_row(bench, row, len(audio), work)


def bench_beats(bench: Bench) -> None:
    beats = beats_features(bench.sizes, bench.device)
    samples = int(AUDIO_SECONDS * SAMPLE_RATE)
    audio = 0.1 * torch.randn(bench.sizes.beats_clips, samples, device=bench.device)
    for batch in (1, bench.sizes.beats_clips):
        beats_row(bench, beats, audio, batch)


SECTIONS: dict[str, Callable[[Bench], None]] = {
    "generation": bench_generation,
    "training": bench_training,
    "evaluation": bench_evaluation,
    "beats": bench_beats,
}


# ---- report ---------------------------------------------------------------------------------


def ratio(rows: dict[str, Row], top: str, bottom: str) -> float | None:
    """Throughput of `top` over `bottom`, or None when either did not run."""
    a, b = rows.get(top), rows.get(bottom)
    if a is None or b is None or a.items_per_second is None or b.items_per_second is None:
        return None
    return a.items_per_second / b.items_per_second


RATIOS = {  # name -> (numerator row, denominator row)
    "generation fp16 batched / batch 1": ("generation/fp16/batched", "generation/fp16/single"),
    "generation bf16 batched / batch 1": ("generation/bf16/batched", "generation/bf16/single"),
    "generation fp16 batch 1 / fp32 batch 1": ("generation/fp16/single", "generation/fp32/single"),
    "generation fp16 batched / fp32 batch 1 (reference)": (
        "generation/fp16/batched",
        "generation/fp32/single",
    ),
    "training fp16 autocast / fp32": ("training/fp16-autocast", "training/fp32"),
    "training bf16 autocast / fp32": ("training/bf16-autocast", "training/fp32"),
    "training fp16: cached features / recomputed every step": (
        "training/fp16-autocast",
        "training/fp16-recomputed",
    ),
    "evaluation batched / per-image (reference)": ("evaluation/batched", "evaluation/single"),
    "beats batched / batch 1": ("beats/batched", "beats/single"),
}


def ratios(rows: dict[str, Row]) -> dict[str, float | None]:
    return {name: ratio(rows, top, bottom) for name, (top, bottom) in RATIOS.items()}


def format_row(row: Row) -> str:
    """A table line: throughput, seconds and peak memory, or why the row has no numbers."""
    head = f"{row.section:10} {row.name:52}"
    if row.status != "ok":
        return f"{head} {row.status}"
    memory = "-" if row.peak_memory_mib is None else f"{row.peak_memory_mib:.0f}"
    return f"{head} {row.items_per_second:10.3f} {row.seconds:9.3f} {memory:>10}"


def print_report(bench: Bench) -> None:
    payload = bench.payload()
    print(f"\n{'section':10} {'measurement':52} {'items/s':>10} {'seconds':>9} {'peak MiB':>10}")
    for key in ROW_KEYS:
        print(format_row(bench.rows[key]))
    print()
    for name, value in payload["ratios"].items():
        print(f"{name}: " + ("n/a" if value is None else f"{value:.2f}x"))
    target = payload["ratios"]["generation fp16 batched / batch 1"]
    if bench.device.type == "cuda" and target is not None:
        print(f"batch {bench.sizes.generation_batch} / batch 1 target >= 3x: ", end="")
        print("met" if target >= 3 else "NOT met")
    for line in payload["notes"]:
        print(f"note: {line}")


def header(device: torch.device, sizes: Sizes, time_limit: float) -> dict[str, Any]:
    """The machine, versions, date, precision settings and what the numbers mean."""
    cuda = device.type == "cuda"
    steps = sizes.measured_steps
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "cuda": torch.version.cuda,
        "versions": package_versions(),
        "smoke": sizes.smoke,
        "sizes": asdict(sizes),
        "time_limit_s": time_limit,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "notes": [
            f"generation: {steps} PNDM steps measured per run, scaled to {NOMINAL_STEPS} steps "
            "from the measured time per UNet call; guidance 7.5; "
            f"{sizes.image_size} px; items are images",
            "random weights at the published sizes" if not sizes.smoke else "smoke: tiny models",
            "peak memory: torch.cuda.max_memory_allocated, reset before every row; it includes "
            "the weights of the models on the device",
            "TF32 is left at its default (speechbrain's import, which turns it on, is guarded as "
            "in audiobench); every row records the value it ran with",
        ],
    }


# ---- entry point ----------------------------------------------------------------------------


@contextmanager
def scratch_cache() -> Iterator[None]:
    """Random weight files and the tokenizer go to a temporary AUDIOBENCH_CACHE (the BEATs base
    file alone is 360 MB), and nothing may reach the network."""
    previous = {name: os.environ.get(name) for name in ("AUDIOBENCH_CACHE", "HF_HUB_OFFLINE")}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["AUDIOBENCH_CACHE"] = folder
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_section(bench: Bench, name: str) -> None:
    """One section; if its models fail to build, its rows say why and the others still run."""
    if bench.expired():
        bench.fail_remaining(name, "skipped: time guard")
        return
    start = time.perf_counter()
    try:
        SECTIONS[name](bench)
    except Exception as error:
        message = f"error: {type(error).__name__}: {str(error)[:300]}"
        print(f"{name}: {message}", file=sys.stderr, flush=True)
        bench.fail_remaining(name, message)
    finally:
        bench.section_seconds[name] = round(time.perf_counter() - start, 1)
        free_memory(bench.device)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m audiobench.benchmarks.gpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny models and sizes (seconds)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="S",
        help="skip the rows not started after S seconds (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit code 1 when a row failed (not when the time guard skipped rows)."""
    arguments = parse(argv)
    device = torch.device(arguments.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: `--device cpu --smoke` runs the tiny version", file=sys.stderr)
        return 2
    sizes = SMOKE if arguments.smoke else FULL
    if sizes.smoke and device.type == "cpu":
        # Tiny ops on a busy machine: OpenMP threads spin-waiting for a core made calls ~40x
        # slower on a shared 2-core CI box. The smoke run checks the code, not the speed.
        torch.set_num_threads(1)
    start = time.monotonic()
    bench = Bench(
        device,
        sizes,
        start + arguments.time_limit,
        arguments.json,
        header(device, sizes, arguments.time_limit),
    )
    with scratch_cache():
        for name in SECTIONS:
            run_section(bench, name)
    bench.header["total_seconds"] = round(time.monotonic() - start, 1)
    bench.write()
    print_report(bench)
    print(f"total: {bench.header['total_seconds']:.0f} s")
    failed = [row.key for row in bench.rows.values() if row.status.startswith("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
