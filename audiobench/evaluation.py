"""`audiobench evaluate`: the registered metrics of one run, written to `metrics.json`.

This is the thin layer between a run directory and `audiobench.scoring`: it picks the samples
every requested metric can use, hands their images, reference frames, audio windows and labels
to `score_sets`, and records the results with everything needed to reproduce them. Which
metrics exist, what they need and what they write is known only to the metric plugins.

Embeddings are cached by input content, model weights, feature code version and preprocessing
settings (`audiobench.features`): a second evaluation computes nothing; `no_cache` computes
everything afresh. Samples whose generation failed or whose image is missing or unreadable are
left out, listed with the reason, and N counts only the evaluated samples.

Under a multi-process launch the processes share the embedding batches (`Features`), every
process then computes the (cheap) metrics from the same cached embeddings, and the main process
alone writes them.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from PIL import Image

from audiobench import __version__
from audiobench.concurrency import thread_map
from audiobench.data import Sample, dataset_identity, frame_policy, input_hashes, load_index
from audiobench.distributed import Processes, join, main_holds_lock
from audiobench.environment import package_versions
from audiobench.errors import AudiobenchError, SampleError
from audiobench.features import Features, InputSet
from audiobench.metrics.plugin import MetricResult, ScoreSettings, discover_metrics, get_metric
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.zoo import cache_dir
from audiobench.runner import SAMPLE_COLUMNS
from audiobench.scoring import Sources, needed_sources, score_sets
from audiobench.store import (
    RunDirectory,
    atomic_write_json,
    file_sha256,
    hashes_digest,
    read_json,
)

METRICS_SCHEMA_VERSION = 2  # 2: metrics from plugins, `settings` and `feature_caches` recorded
METRICS_FILE = "metrics.json"
RUN_COLUMNS = (*SAMPLE_COLUMNS, "source_sha256")  # written by `run` and `evaluate --images`


@dataclass
class EvaluateSettings:
    """Everything `audiobench evaluate` needs; CLI options map one to one onto these fields."""

    run_dir: Path
    metrics: tuple[str, ...] | None = None  # default: the paper's Table 1 metrics
    data_dir: Path | None = None  # default: the dataset recorded in run.json
    profile: str | None = None  # default: the run's profile
    device: str = "auto"
    batch_size: int = 32
    pool_size: int | None = None
    seed: int = 0
    n_resamples: int = 1000
    set_resamples: int = 100
    weights_dir: Path | None = None
    no_cache: bool = False
    replace: bool = False  # drop the metrics of earlier evaluations instead of keeping them
    allow_dataset_change: bool = False  # score against a dataset that changed since the run

    @property
    def scoring(self) -> ScoreSettings:
        return ScoreSettings(self.seed, self.n_resamples, self.set_resamples, self.pool_size)


@dataclass(frozen=True)
class Evaluated:
    """One sample that enters the metrics: its dataset entry and its generated image."""

    sample: Sample
    image: Path


def evaluate(settings: EvaluateSettings) -> dict[str, Any]:
    """Compute the requested metrics of a run, merge them into metrics.json (keeping the
    metrics computed before on the same samples and settings, unless `replace`), write the
    per-sample columns, and return metrics.json's content."""
    from audiobench.metrics.plugin import default_metrics

    _check_settings(settings)
    names = settings.metrics or default_metrics()
    metrics = [get_metric(name) for name in names]
    run = RunDirectory(settings.run_dir)
    if not run.run_file.is_file():
        raise AudiobenchError(
            f"{run.path} is not a finished run directory (no run.json); make one with "
            "`audiobench run` or `audiobench evaluate --images`"
        )
    processes, device = join(settings.device)
    with main_holds_lock(run.path, processes):
        record, table = run.read_run(), run.read_samples()
        if record is None or table is None:
            raise AudiobenchError(
                f"{run.path} is not a finished run directory (no run.json or "
                "samples.parquet); make one with `audiobench run`"
            )
        data_dir = settings.data_dir or record["dataset"]
        split = load_index(data_dir, record["split"])
        dataset = _dataset(record, data_dir, split, settings.allow_dataset_change)
        samples = {sample.id: sample for sample in split}
        evaluated, excluded = _select(run, table, samples, needed_sources(metrics))
        if len(evaluated) < 2:
            raise AudiobenchError(
                f"{run.path} has {len(evaluated)} evaluable samples, at least 2 are needed "
                f"({len(excluded)} excluded: {_summarise(excluded)})"
            )
        zoo = ModelZoo(
            settings.profile or record["profile"],
            LoadOptions(device, torch.float32),
            settings.weights_dir,
        )
        zoo.require({role for metric in metrics for role in metric.roles()})
        features = _features(run, zoo, settings, processes)
        results = score_sets(
            names, _sources(evaluated, needed_sources(metrics)), features, settings.scoring
        )
        report = _metrics_record(record, settings, zoo, results, evaluated, excluded)
        report["dataset"] = dataset
        report["reference_frames"] = {"policy": frame_policy(data_dir, record["split"])}
        report["feature_caches"] = sorted(features.used)
        report, dropped = _merged(run, report, settings.replace)
        if processes.is_main:
            table = table.drop(columns=[c for c in dropped if c in table.columns])
            run.write_samples(_with_columns(table, evaluated, results))
            atomic_write_json(run.path / METRICS_FILE, report)
        if settings.no_cache:
            processes.wait()
            if processes.is_main:
                shutil.rmtree(fresh_cache(run), ignore_errors=True)
    return report


# run.json's hashes of its dataset, and what a difference in each means
DATASET_HASHES = {
    "dataset_sha256": "its index (labels, samples or file paths)",
    "inputs_sha256": "its audio or frame files",
}


def _dataset(
    record: dict[str, Any], data_dir: Path, split: list[Sample], allow_change: bool
) -> dict[str, Any]:
    """metrics.json's `dataset`: the dataset as it is now, compared with what the run recorded.
    A dataset that changed since the run is refused unless `allow_change`: its labels, frames
    or audio are no longer what the images were generated from."""
    now = dataset_identity(data_dir, input_hashes(split[: record.get("limit")]))
    changed = [key for key in DATASET_HASHES if key in record and record[key] != now[key]]
    if changed and not allow_change:
        what = " and ".join(DATASET_HASHES[key] for key in changed)
        raise AudiobenchError(
            f"the dataset {data_dir} changed since the run {record.get('method')!r} was made: "
            f"{what}; evaluate with --allow-dataset-change to score against it as it is now"
        )
    return {
        "path": str(Path(data_dir).resolve()),
        "split": record["split"],
        **now,
        "changed_since_run": changed,
    }


def _check_settings(settings: EvaluateSettings) -> None:
    """One-line errors for values that would give no result or a meaningless one."""
    bounds = {
        "batch size": (settings.batch_size, 1),
        "bootstrap resamples": (settings.n_resamples, 1),
        "set resamples": (settings.set_resamples, 1),
        "seed": (settings.seed, 0),
        "pool size": (2 if settings.pool_size is None else settings.pool_size, 2),
    }
    for what, (value, lowest) in bounds.items():
        if value < lowest:
            raise AudiobenchError(f"the {what} must be at least {lowest}, not {value}")


# What must be equal for metrics of an earlier evaluation to stand beside new ones.
SAME_EVALUATION = ("profile", "dataset", "images", "excluded", "bootstrap", "settings")


def _merged(run: RunDirectory, report: dict[str, Any], replace: bool) -> tuple[dict, list[str]]:
    """The new metrics.json with the earlier metrics kept where they are still valid (same
    samples, images, profile and settings), and the per-sample columns of those dropped."""
    path = run.path / METRICS_FILE
    previous = read_json(path) if path.is_file() else {}
    earlier = {
        name: result
        for name, result in previous.get("metrics", {}).items()
        if name not in report["metrics"]
    }
    keep = not replace and all(previous.get(key) == report[key] for key in SAME_EVALUATION)
    if not keep or not earlier:
        metrics = discover_metrics()
        dropped = [c for name in earlier if name in metrics for c in metrics[name].columns]
        return report, dropped
    models = {model["role"]: model for model in [*previous.get("models", []), *report["models"]]}
    merged = {
        **report,
        "metrics": {**earlier, **report["metrics"]},
        "models": list(models.values()),
        "feature_caches": sorted({*previous.get("feature_caches", []), *report["feature_caches"]}),
    }
    return merged, []


def _features(
    run: RunDirectory, zoo: ModelZoo, settings: EvaluateSettings, processes: Processes
) -> Features:
    """The feature store: audiobench's cache, or with `no_cache` an empty throw-away folder
    (shared by the processes of a launch, removed at the end). Never a folder inside the run,
    where a stranger could have planted features."""
    if not settings.no_cache:
        return Features(zoo, settings.batch_size, processes)
    fresh = fresh_cache(run)
    if processes.is_main:
        shutil.rmtree(fresh, ignore_errors=True)
    processes.wait()
    return Features(zoo, settings.batch_size, processes, cache=fresh)


def fresh_cache(run: RunDirectory) -> Path:
    """The throw-away feature folder of one run's `no_cache` evaluation, in audiobench's cache
    (named by the run's path, so every process of a launch finds the same one)."""
    name = hashlib.sha256(str(run.path.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "features-fresh" / name


def _sources(evaluated: list[Evaluated], needed: set[str]) -> Sources:
    """The input sets of the evaluated samples, only those some metric needs."""
    samples = [item.sample for item in evaluated]
    return Sources(
        ids=[sample.id for sample in samples],
        generated=InputSet.image_files([item.image for item in evaluated], "generated images"),
        frames=InputSet.image_files([s.frame_path for s in samples], "reference frames")
        if "frames" in needed
        else None,
        audio=InputSet.audio_windows(samples) if "audio" in needed else None,
        labels=[sample.label for sample in samples],
    )


def _select(
    run: RunDirectory, table: pd.DataFrame, samples: dict[str, Sample], sources: set[str]
) -> tuple[list[Evaluated], list[dict[str, str]]]:
    """The samples every requested metric can use, and the others with the reason."""
    evaluated, excluded = [], []
    for row in table.itertuples(index=False):
        sample_id = cast(str, row.id)  # pandas-stubs types row fields as any scalar
        image = run.image_path(sample_id)
        reason: str | None
        if row.status != "ok":
            reason = f"generation failed: {row.error}"
        elif sample_id not in samples:
            reason = "not in the dataset index"
        else:
            reason = _input_problem(samples[sample_id], image, sources)
        if reason:
            excluded.append({"id": sample_id, "reason": reason})
        else:
            evaluated.append(Evaluated(samples[sample_id], image))
    return evaluated, excluded


def _input_problem(sample: Sample, image: Path, sources: set[str]) -> str | None:
    """Why a metric could not use this sample (unreadable image, frame or audio), or None."""
    reason = _unreadable(image)
    if not reason and "frames" in sources:
        reason = _unreadable(sample.frame_path)
    if not reason and "audio" in sources:
        try:
            sample.read_audio()
        except SampleError as error:
            reason = str(error)
    return reason


def _unreadable(image: Path) -> str | None:
    if not image.is_file():
        return f"{image}: image file missing"
    try:
        with Image.open(image) as opened:
            opened.verify()
    except Exception as error:  # PIL raises many types for damaged files
        return f"{image}: unreadable image ({error})"
    return None


def _summarise(excluded: list[dict[str, str]]) -> str:
    return "; ".join(f"{item['id']}: {item['reason']}" for item in excluded[:3]) or "none"


def _metrics_record(
    record: dict[str, Any],
    settings: EvaluateSettings,
    zoo: ModelZoo,
    results: dict[str, MetricResult],
    evaluated: list[Evaluated],
    excluded: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run": {key: record[key] for key in ("method", "split", "profile", "seed")},
        "profile": zoo.profile,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_samples": len(evaluated) + len(excluded),
        "n_evaluated": len(evaluated),
        "images": evaluated_images(evaluated),
        "excluded": excluded,
        "bootstrap": {"resamples": settings.n_resamples, "seed": settings.seed, "level": 0.95},
        "settings": asdict(settings.scoring),
        "metrics": {name: result.record(get_metric(name)) for name, result in results.items()},
        "models": zoo.provenance(),
        "audiobench_version": __version__,
        "versions": package_versions(),
    }


def evaluated_images(evaluated: list[Evaluated]) -> dict[str, Any]:
    """Count and digest of the images the metrics saw: `audiobench verify` flags metrics
    whose images changed after evaluation."""
    hashes = thread_map(file_sha256, [item.image for item in evaluated])
    ids = [item.sample.id for item in evaluated]
    return {"count": len(ids), "sha256": hashes_digest(dict(zip(ids, hashes, strict=True)))}


def _with_columns(
    table: pd.DataFrame, evaluated: list[Evaluated], results: dict[str, MetricResult]
) -> pd.DataFrame:
    """The run's sample table with this evaluation's per-sample values (NaN where excluded)."""
    columns = {c: v for result in results.values() for c, v in result.per_sample.items()}
    taken = sorted(set(columns) & set(RUN_COLUMNS))
    if taken:
        raise AudiobenchError(f"metric columns {taken} would overwrite the run's own columns")
    values = pd.DataFrame(columns, index=[item.sample.id for item in evaluated])
    table = table.drop(columns=[c for c in values.columns if c in table.columns])
    return table.join(values, on="id")
