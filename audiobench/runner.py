"""`audiobench run`: one method over one dataset split, resumable and reproducible.

Samples are cut into batches in index order once and for all; a batch is the unit of work. A
batch with any unfinished sample is generated again whole (so every image comes from the same
batch composition as in an uninterrupted run) and only the missing images are written. Each
image's noise comes from its own seed, derived from the run seed and the sample id.

Under a multi-process launch (`audiobench.distributed`) process r generates the batches k with
k mod N = r and records them in `samples.part-r.parquet`; at the end the main process merges
the parts into `samples.parquet`. The images are those of a one-process run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from audiobench import __version__
from audiobench.data import Sample, index_sha256, input_hashes, load_index
from audiobench.distributed import Processes, join, main_holds_lock, on_main
from audiobench.environment import default_dtype, git_commit, hardware, package_versions
from audiobench.errors import AudiobenchError, SampleError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.zoo import files_sha256
from audiobench.progress import Progress, progress_bar
from audiobench.registry import Method, MethodContext, build_config, get_method
from audiobench.store import RunDirectory, atomic_write_parquet, hashes_digest, make_directory

RUN_SCHEMA_VERSION = 1
# run.json keys that must match for a restarted run to continue an existing directory.
IDENTITY_KEYS = (
    "method",
    "method_config",
    "dataset_sha256",
    "split",
    "limit",
    "profile",
    "seed",
    "batch_size",
    "checkpoint",
    "dtype",
    "weights",
)
SAMPLE_COLUMNS = (
    "id",
    "label",
    "status",
    "error",
    "image",
    "image_sha256",
    "input_sha256",  # of the sample's label, audio window, audio and frame (`input_hashes`)
    "seed",
    "seconds",
)


@dataclass
class RunSettings:
    """Everything `audiobench run` needs; CLI options map one to one onto these fields."""

    method: str
    data_dir: Path
    out: Path
    split: str = "test"
    limit: int | None = None  # only the first N samples of the split, in index order
    profile: str = "paper"
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    options: dict[str, str] = field(default_factory=dict)
    checkpoint: Path | None = None
    weights_dir: Path | None = None


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    total: int
    ok: int
    failed: int
    generated: int  # images made by this invocation (the rest were already there)


def sample_seed(run_seed: int, sample_id: str) -> int:
    """A seed per sample that depends on nothing but the run seed and the sample id."""
    digest = hashlib.sha256(f"{run_seed}/{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def run_name(settings: RunSettings) -> str:
    limit = f"-first{settings.limit}" if settings.limit is not None else ""
    return f"{settings.method}-{settings.split}{limit}-{settings.profile}-seed{settings.seed}"


def execute(settings: RunSettings) -> RunSummary:
    """Run (or resume) a method over a split and return what happened."""
    if settings.batch_size < 1:
        raise AudiobenchError(f"--batch-size must be at least 1, not {settings.batch_size}")
    if settings.limit is not None and settings.limit < 1:
        raise AudiobenchError(f"--limit must be at least 1, not {settings.limit}")
    samples = load_index(settings.data_dir, settings.split)[: settings.limit]
    method_class = get_method(settings.method)
    config = method_config(method_class, settings)
    processes, device = join(settings.device)
    options = LoadOptions(device=device, dtype=default_dtype(device))
    zoo = ModelZoo(settings.profile, options, settings.weights_dir)
    zoo.require(method_class.roles)
    hashes = input_hashes(samples)
    identity = _identity(settings, config, hashes, zoo, method_class.roles)
    run = RunDirectory(make_directory(Path(settings.out)) / run_name(settings))
    make_directory(run.path)
    with main_holds_lock(run.path, processes):
        previous = on_main(processes, lambda: _open(run, identity, samples, hashes))
        method = method_class(config)
        steps = _StepNotes()
        context = MethodContext(
            zoo, device, options.dtype, settings.checkpoint, processes, report_step=steps
        )
        method.setup(context)
        record = {
            **_run_record(settings, identity, previous, zoo, device, processes),
            "inputs_sha256": hashes_digest(hashes),
        }
        if processes.is_main:
            run.write_run(record)
        summary = _generate_all(method, samples, hashes, settings, run, processes, steps)
        if processes.is_main:
            run.write_run({**record, "images": recorded_images(run)})
        return summary


def method_config(method_class: type[Method], settings: RunSettings) -> Any:
    """The method's options for this run (run.json's `method_config`): its defaults, on the
    `tiny` profile its `tiny_defaults` over them, and the `--set` options over both."""
    tiny_defaults = method_class.tiny_defaults if settings.profile == "tiny" else {}
    return build_config(method_class.Config, settings.options, tiny_defaults)


def recorded_images(run: RunDirectory) -> dict[str, Any]:
    """Count and digest of the finished images as samples.parquet records them (run.json's
    `images`, which `audiobench verify` checks the files against)."""
    table = run.read_samples()
    finished = table[table.status == "ok"] if table is not None else table
    hashes = {} if finished is None else dict(zip(finished.id, finished.image_sha256, strict=True))
    return {"count": len(hashes), "sha256": hashes_digest(hashes)}


def _open(
    run: RunDirectory, identity: dict, samples: list[Sample], hashes: dict[str, str]
) -> dict | None:
    """Create or reopen the run directory; its previous run.json, if any."""
    run.create()
    previous = run.read_run()
    _check_same_run(run, previous, identity)
    records = _merge_parts(run, samples)  # of a killed multi-process session
    _check_same_inputs(run, records, hashes)
    return previous


def _check_same_inputs(run: RunDirectory, records: dict[str, dict], hashes: dict[str, str]) -> None:
    """Refuse to continue a run whose finished samples' inputs changed since their images were
    made (the run would mix images of two datasets); failed samples are simply retried."""
    changed = [
        sample_id
        for sample_id, row in records.items()
        if row["status"] == "ok"
        and isinstance(row.get("input_sha256"), str)
        and row["input_sha256"] != hashes.get(sample_id)
    ]
    if changed:
        raise AudiobenchError(
            f"{run.path}: the inputs (label, audio or frame) of {len(changed)} finished samples "
            f"changed since their images were made, e.g. {', '.join(changed[:3])}; use another "
            "--out for the dataset as it is now"
        )


def _identity(
    settings: RunSettings,
    config: Any,
    hashes: dict[str, str],
    zoo: ModelZoo,
    roles: Sequence[str],
) -> dict[str, Any]:
    """What a run is: a restarted run continues a directory only when all of it is equal
    (every role's weights hash included, so images of other weights are never mixed into one
    run; the samples' inputs are checked one by one, `_check_same_inputs`)."""
    checkpoint = None
    if settings.checkpoint is not None:
        if not Path(settings.checkpoint).exists():
            raise AudiobenchError(f"checkpoint {settings.checkpoint} does not exist")
        checkpoint = {"path": str(settings.checkpoint), "sha256": files_sha256(settings.checkpoint)}
    return {
        "method": settings.method,
        "method_config": asdict(config),
        "dataset_sha256": index_sha256(settings.data_dir),
        "split": settings.split,
        "limit": settings.limit,
        "profile": settings.profile,
        "seed": settings.seed,
        "batch_size": settings.batch_size,
        "checkpoint": checkpoint,
        "dtype": str(zoo.options.dtype).removeprefix("torch."),
        "weights": {role: zoo.identify(role).sha256 for role in roles},
    }


def _check_same_run(run: RunDirectory, previous: dict | None, identity: dict) -> None:
    if previous is None:
        return
    changed = [key for key in IDENTITY_KEYS if previous.get(key) != identity[key]]
    if changed:
        raise AudiobenchError(
            f"{run.path} holds a run with different {', '.join(changed)}; "
            "use another --out to keep both, or delete it"
        )


def _run_record(
    settings: RunSettings,
    identity: dict,
    previous: dict | None,
    zoo: ModelZoo,
    device,
    processes: Processes,
) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sessions = [
        *(previous or {}).get("sessions", []),
        {"started": now, "hardware": hardware(device), "processes": processes.size},
    ]
    return {
        "schema_version": RUN_SCHEMA_VERSION,
        **identity,
        "dataset": str(Path(settings.data_dir).resolve()),
        "device": device.type,
        "created": (previous or {}).get("created", now),
        "sessions": sessions,
        "audiobench_version": __version__,
        "versions": package_versions(),
        "git": git_commit(),
        "models": zoo.provenance(),
    }


class _StepNotes:
    """The methods' `report_step`, shown on the run's progress as "iteration 40/60" (the method
    gets it at setup, before the progress opens)."""

    progress: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.note(f"iteration {done}/{total}")


def _generate_all(
    method: Method,
    samples: list[Sample],
    hashes: dict[str, str],
    settings: RunSettings,
    run: RunDirectory,
    processes: Processes,
    steps: _StepNotes,
) -> RunSummary:
    records = _existing_records(run)
    done = {
        sid
        for sid, row in records.items()
        if row["status"] == "ok" and run.image_path(sid).is_file()
    }
    batches = [
        samples[i : i + settings.batch_size] for i in range(0, len(samples), settings.batch_size)
    ]
    mine = [batch for index, batch in enumerate(batches) if processes.owns(index)]
    owned = [sample for batch in mine for sample in batch]
    generated = 0
    with progress_bar(len(owned), f"generate {settings.method}", "samples") as progress:
        steps.progress = progress
        progress.advance(len(done & {sample.id for sample in owned}))
        for batch in mine:
            todo = [sample for sample in batch if sample.id not in done]
            if todo:
                stamp = partial(_record, run_seed=settings.seed, hashes=hashes)
                written = _generate_batch(method, batch, done, stamp, run, records)
                generated += written
                _save_records(run, records, samples if processes.size == 1 else owned, processes)
            progress.advance(len(todo))
    processes.wait()
    if processes.size > 1 and processes.is_main:
        records = _merge_parts(run, samples)
    statuses = [records[sample.id]["status"] for sample in samples if sample.id in records]
    ok, failed = processes.from_main((statuses.count("ok"), statuses.count("failed")))
    generated = sum(processes.gather(generated))
    return RunSummary(run.path, len(samples), ok, failed, generated)


def _save_records(
    run: RunDirectory, records: dict[str, dict], samples: list[Sample], processes: Processes
) -> None:
    table = _records_table(records, samples)
    if processes.size == 1:
        run.write_samples(table)
    else:
        atomic_write_parquet(run.part_file(processes.rank), table)


def _generate_batch(
    method: Method,
    batch: Sequence[Sample],
    done: set[str],
    stamp: Callable[..., dict[str, Any]],
    run: RunDirectory,
    records: dict[str, dict],
) -> int:
    """Generate one batch whole and write the images not already on disk; `stamp` makes a
    sample's record (`_record` with the run's seed and the samples' input hashes)."""
    prepared: list[tuple[Sample, Any]] = []
    for sample in batch:
        try:
            prepared.append((sample, method.prepare(sample)))
        except SampleError as error:
            records[sample.id] = stamp(sample, error=str(error))
    if not prepared:
        return 0
    seeds = [stamp(sample)["seed"] for sample, _ in prepared]
    start = time.perf_counter()
    try:
        images = method.generate([inputs for _, inputs in prepared], seeds)
    except SampleError as error:
        for sample, _ in prepared:
            records[sample.id] = stamp(sample, error=str(error))
        return 0
    seconds = (time.perf_counter() - start) / len(prepared)
    if len(images) != len(prepared) or not all(isinstance(i, Image.Image) for i in images):
        raise RuntimeError(
            f"method {type(method).__name__} returned {len(images)} objects for "
            f"{len(prepared)} inputs; generate() must return one PIL image per input"
        )
    written = 0
    for (sample, _), image in zip(prepared, images, strict=True):
        if sample.id in done:
            continue
        path, digest = run.write_image(sample.id, image)
        records[sample.id] = stamp(sample, image=path, image_sha256=digest, seconds=seconds)
        done.add(sample.id)
        written += 1
    return written


def _record(
    sample: Sample,
    *,
    run_seed: int,
    hashes: dict[str, str],
    error: str | None = None,
    image: str | None = None,
    image_sha256: str | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    return {
        "id": sample.id,
        "label": sample.label,
        "status": "failed" if error else "ok",
        "error": error,
        "image": image,
        "image_sha256": image_sha256,
        "input_sha256": hashes[sample.id],
        "seed": sample_seed(run_seed, sample.id),
        "seconds": seconds,
    }


def _merge_parts(run: RunDirectory, samples: list[Sample]) -> dict[str, dict]:
    """Fold the processes' part files into samples.parquet; all records."""
    records = _existing_records(run)
    parts = run.part_files()
    if parts:
        run.write_samples(_records_table(records, samples))
        for part in parts:
            part.unlink()
    return records


def _existing_records(run: RunDirectory) -> dict[str, dict]:
    """Records of earlier sessions: samples.parquet, then unmerged parts of a killed
    multi-process run (each part holds only its own process's samples, so none overlap)."""
    tables = [run.read_samples(), *run.read_parts()]
    return {
        row["id"]: row for table in tables if table is not None for row in table.to_dict("records")
    }


def _records_table(records: dict[str, dict], samples: list[Sample]) -> pd.DataFrame:
    rows = [records[sample.id] for sample in samples if sample.id in records]
    table = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    return table.astype({"seed": "int64", "seconds": "float64"})
