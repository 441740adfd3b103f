"""`audiobench evaluate`: the paper's four metrics for one run, written to `metrics.json`.

Embeddings come from the metric roles of the model zoo through `audiobench.features`, which
caches them by input content and model weights: a second evaluation computes nothing.

Samples whose generation failed or whose image is missing or unreadable are left out, listed
with the reason, and N counts only the evaluated samples.

Under a multi-process launch the processes share the embedding batches (`Features`), every
process then computes the (cheap) metrics from the same cached embeddings, and the main process
alone writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from audiobench import __version__
from audiobench.concurrency import thread_map
from audiobench.data import Sample, frame_policy, load_index
from audiobench.distributed import join, main_holds_lock
from audiobench.environment import package_versions
from audiobench.errors import AudiobenchError, SampleError
from audiobench.features import FeatureKind, Features
from audiobench.metrics.fid import fid_bootstrap_ci, fid_from_features
from audiobench.metrics.scores import (
    agreement_rate,
    bootstrap_ci,
    identification_accuracy,
    win_rate,
)
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.classifier import ARCHITECTURE as CLASSIFIER_ARCHITECTURE
from audiobench.models.classifier import class_names
from audiobench.store import RunDirectory, atomic_write_json, file_sha256, images_digest

METRICS_SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
METRICS = ("ais", "iis", "aic", "fid")  # Table 1, the default
STUDY_METRICS = ("sid",)  # the speaker study's identification accuracy, on request
METRIC_ROLES = {
    "ais": ("wav2clip", "clip_b32"),
    "iis": ("clip_l14",),
    "aic": ("classifier", "clip_l14"),
    "fid": ("inception",),
    "sid": ("clip_l14",),
}
# What each metric embeds: generated images, reference frames or audio windows, with which model.
FEATURES: dict[str, dict[str, list[FeatureKind]]] = {
    "ais": {
        "generated": [FeatureKind("clip_b32", "image")],
        "audio": [FeatureKind("wav2clip", "audio")],
    },
    "iis": {
        "generated": [FeatureKind("clip_l14", "image")],
        "frames": [FeatureKind("clip_l14", "image")],
    },
    "aic": {"generated": [FeatureKind("classifier", "top1")]},
    "fid": {
        "generated": [FeatureKind("inception", "inception")],
        "frames": [FeatureKind("inception", "inception")],
    },
    "sid": {
        "generated": [FeatureKind("clip_l14", "image")],
        "frames": [FeatureKind("clip_l14", "image")],
    },
}
HIGHER_IS_BETTER = {"ais": True, "iis": True, "aic": True, "fid": False, "sid": True}
AIC_THRESHOLD = 0.75


@dataclass
class EvaluateSettings:
    """Everything `audiobench evaluate` needs; CLI options map one to one onto these fields."""

    run_dir: Path
    metrics: tuple[str, ...] = METRICS
    data_dir: Path | None = None  # default: the dataset recorded in run.json
    profile: str | None = None  # default: the run's profile
    device: str = "auto"
    batch_size: int = 32
    pool_size: int | None = None
    seed: int = 0
    n_resamples: int = 1000
    fid_resamples: int = 100
    weights_dir: Path | None = None


@dataclass(frozen=True)
class Evaluated:
    """One sample that enters the metrics: its dataset entry and its generated image."""

    sample: Sample
    image: Path


def evaluate(settings: EvaluateSettings) -> dict[str, Any]:
    """Compute the requested metrics of a run, write them, and return metrics.json's content."""
    unknown = sorted(set(settings.metrics) - set(METRICS + STUDY_METRICS))
    if unknown or not settings.metrics:
        raise AudiobenchError(
            f"unknown metrics {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METRICS + STUDY_METRICS)}"
        )
    run = RunDirectory(settings.run_dir)
    record = run.read_run()
    table = run.read_samples()
    if record is None or table is None:
        raise AudiobenchError(
            f"{run.path} is not a finished run directory (no run.json or "
            "samples.parquet); make one with `audiobench run`"
        )
    samples = load_index(settings.data_dir or record["dataset"], record["split"])
    by_id = {sample.id: sample for sample in samples}
    evaluated, excluded = _select(run, table, by_id, settings.metrics)
    if len(evaluated) < 2:
        raise AudiobenchError(
            f"{run.path} has {len(evaluated)} evaluable samples, at least 2 are needed "
            f"({len(excluded)} excluded: {_summarise(excluded)})"
        )
    processes, device = join(settings.device)
    zoo = ModelZoo(
        settings.profile or record["profile"],
        LoadOptions(device, torch.float32),
        settings.weights_dir,
    )
    zoo.require({role for metric in settings.metrics for role in METRIC_ROLES[metric]})
    with main_holds_lock(run.path, processes):
        features = Features(zoo, settings.batch_size, run.path / "features", processes)
        vectors = _gather(evaluated, features, settings.metrics)
        results: dict[str, Any] = {}
        columns: dict[str, list] = {}
        for metric in settings.metrics:
            results[metric], new_columns = _COMPUTE[metric](evaluated, vectors, features, settings)
            columns.update(new_columns)
        report = _metrics_record(record, settings, zoo, results, evaluated, excluded)
        report["reference_frames"] = {
            "policy": frame_policy(settings.data_dir or record["dataset"], record["split"])
        }
        if processes.is_main:
            run.write_samples(_with_columns(table, evaluated, columns))
            atomic_write_json(run.path / METRICS_FILE, report)
    return report


def _select(
    run: RunDirectory, table: pd.DataFrame, samples: dict[str, Sample], metrics: Sequence[str]
) -> tuple[list[Evaluated], list[dict[str, str]]]:
    """The samples every requested metric can use, and the others with the reason."""
    evaluated, excluded = [], []
    for row in table.itertuples(index=False):
        image = run.image_path(row.id)
        if row.status != "ok":
            reason = f"generation failed: {row.error}"
        elif row.id not in samples:
            reason = "not in the dataset index"
        else:
            reason = _input_problem(samples[row.id], image, metrics)
        if reason:
            excluded.append({"id": row.id, "reason": reason})
        else:
            evaluated.append(Evaluated(samples[row.id], image))
    return evaluated, excluded


def _input_problem(sample: Sample, image: Path, metrics: Sequence[str]) -> str | None:
    """Why a metric could not use this sample (unreadable image, frame or audio), or None."""
    sources = {source for metric in metrics for source in FEATURES[metric]}
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


def _gather(
    items: list[Evaluated], features: Features, metrics: Sequence[str]
) -> dict[tuple[str, FeatureKind], np.ndarray]:
    """Every embedding the metrics need, each input decoded once for all models."""
    wanted: dict[str, list[FeatureKind]] = {"generated": [], "frames": [], "audio": []}
    for metric in metrics:
        for source, kinds in FEATURES[metric].items():
            wanted[source] += [kind for kind in kinds if kind not in wanted[source]]
    vectors = {}
    if wanted["generated"]:
        computed = features.generated([item.image for item in items], wanted["generated"])
        vectors.update(
            {("generated", k): v for k, v in zip(wanted["generated"], computed, strict=True)}
        )
    if wanted["frames"]:
        computed = features.frames([item.sample.frame_path for item in items], wanted["frames"])
        vectors.update({("frames", k): v for k, v in zip(wanted["frames"], computed, strict=True)})
    for kind in wanted["audio"]:
        vectors["audio", kind] = features.audio([item.sample for item in items], kind)
    return vectors


def _pool(count: int, settings: EvaluateSettings) -> tuple[torch.Tensor | None, Any]:
    if settings.pool_size is None or settings.pool_size >= count:
        return None, "all other samples"
    rows = np.random.default_rng(settings.seed).choice(count, settings.pool_size, replace=False)
    return torch.from_numpy(np.sort(rows)), {"size": settings.pool_size, "seed": settings.seed}


def _scored(per_sample: np.ndarray, settings: EvaluateSettings, config: dict) -> dict[str, Any]:
    low, high = bootstrap_ci(per_sample, settings.n_resamples, settings.seed)
    return {
        "value": 100.0 * float(per_sample.mean()),
        "n": int(per_sample.size),
        "ci95": [100.0 * low, 100.0 * high],
        "config": config,
    }


def _scored_win_rate(
    query: np.ndarray, paired: np.ndarray, settings: EvaluateSettings, config: dict
) -> tuple[dict[str, Any], np.ndarray]:
    """AIS and IIS: the win rate of query rows against their pairs, over the configured pool."""
    pool, pool_config = _pool(len(query), settings)
    _, wins = win_rate(torch.from_numpy(query), torch.from_numpy(paired), pool)
    return _scored(wins, settings, {**config, "pool": pool_config}), wins


def _ais(items, vectors, features: Features, settings):
    result, wins = _scored_win_rate(
        vectors["generated", FeatureKind("clip_b32", "image")],
        vectors["audio", FeatureKind("wav2clip", "audio")],
        settings,
        {
            "image_role": "clip_b32",
            "audio_role": "wav2clip",
            "audio": "the evaluation window of the dataset index (audio_start-audio_end)",
        },
    )
    return result, {"ais_win": wins}


def _iis(items, vectors, features: Features, settings):
    result, wins = _scored_win_rate(
        vectors["generated", FeatureKind("clip_l14", "image")],
        vectors["frames", FeatureKind("clip_l14", "image")],
        settings,
        {"image_role": "clip_l14", "reference": "dataset reference frames"},
    )
    return result, {"iis_win": wins}


def _aic(items, vectors, features: Features, settings):
    top1 = vectors["generated", FeatureKind("classifier", "top1")][:, 0].astype(int)
    predicted = [class_names()[index] for index in top1]
    labels = [item.sample.label for item in items]
    _, agree = agreement_rate(predicted, labels, features.texts, AIC_THRESHOLD)
    config = {
        "classifier": CLASSIFIER_ARCHITECTURE,
        "text_role": "clip_l14",
        "threshold": AIC_THRESHOLD,
        "rule": "names equal (case-insensitive) or text cosine > threshold",
    }
    return _scored(agree, settings, config), {"aic_prediction": predicted, "aic_agree": agree}


def _fid(items, vectors, features: Features, settings):
    generated = torch.from_numpy(vectors["generated", FeatureKind("inception", "inception")])
    reference = torch.from_numpy(vectors["frames", FeatureKind("inception", "inception")])
    low, high = fid_bootstrap_ci(generated, reference, settings.fid_resamples, settings.seed)
    config = {
        "feature_extractor": "torch-fidelity inception-v3-compat",
        "layer": "2048",
        "reference": "the reference frames of the same samples",
        "bootstrap_resamples": settings.fid_resamples,
    }
    result = {
        "value": fid_from_features(generated, reference),
        "n": len(items),
        "ci95": [low, high],
        "config": config,
    }
    return result, {}


def _sid(items, vectors, features: Features, settings):
    """Speaker identification: each image against every label's reference frames (CLIP)."""
    labels = [item.sample.label for item in items]
    try:
        identified, correct = identification_accuracy(
            torch.from_numpy(vectors["generated", FeatureKind("clip_l14", "image")]),
            labels,
            torch.from_numpy(vectors["frames", FeatureKind("clip_l14", "image")]),
            labels,
        )
    except ValueError as error:
        raise AudiobenchError(f"sid: {error}") from error
    config = {
        "image_role": "clip_l14",
        "reference": "each label's prototype: the mean CLIP embedding of its evaluated "
        "samples' reference frames",
        "labels": len(set(labels)),
        "chance": 100.0 / len(set(labels)),
    }
    return _scored(correct, settings, config), {
        "sid_prediction": identified,
        "sid_correct": correct,
    }


_COMPUTE = {"ais": _ais, "iis": _iis, "aic": _aic, "fid": _fid, "sid": _sid}


def _metrics_record(record, settings, zoo, results, evaluated, excluded) -> dict[str, Any]:
    for name, result in results.items():
        result["higher_is_better"] = HIGHER_IS_BETTER[name]
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
        "metrics": results,
        "models": zoo.provenance(),
        "audiobench_version": __version__,
        "versions": package_versions(),
    }


def evaluated_images(evaluated: list[Evaluated]) -> dict[str, Any]:
    """Count and digest of the images the metrics saw: `audiobench verify` flags metrics
    whose images changed after evaluation."""
    hashes = thread_map(file_sha256, [item.image for item in evaluated])
    ids = [item.sample.id for item in evaluated]
    return {"count": len(ids), "sha256": images_digest(dict(zip(ids, hashes, strict=True)))}


def _with_columns(table: pd.DataFrame, evaluated: list[Evaluated], columns: dict[str, list]):
    """The run's sample table with this evaluation's per-sample values (NaN where excluded)."""
    values = pd.DataFrame(columns, index=[item.sample.id for item in evaluated])
    table = table.drop(columns=[c for c in values.columns if c in table.columns])
    return table.join(values, on="id")
