"""`audiobench evaluate`: the paper's four metrics for one run, written to `metrics.json`.

Embeddings come from the metric roles of the model zoo and go through a feature cache keyed by
the content hash of each input and the weights hash of each model: generated images are cached
in the run (`RUN/features/`), dataset inputs (audio windows, reference frames) in audiobench's
cache, shared by every run of a dataset. A second evaluation of the same run computes nothing.

Samples whose generation failed or whose image is missing or unreadable are left out, listed
with the reason, and N counts only the evaluated samples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from audiobench import __version__
from audiobench.dataset import Sample, load_index, read_frame
from audiobench.environment import package_versions, resolve_device
from audiobench.errors import AudiobenchError
from audiobench.metrics.fid import fid_bootstrap_ci, fid_from_features
from audiobench.metrics.scores import agreement_rate, bootstrap_ci, win_rate
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.classifier import ARCHITECTURE as CLASSIFIER_ARCHITECTURE
from audiobench.models.classifier import class_names
from audiobench.models.zoo import cache_dir
from audiobench.progress import progress_bar
from audiobench.store import (
    FeatureCache,
    RunDirectory,
    atomic_write_json,
    exclusive_lock,
    file_sha256,
)

METRICS_SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
METRICS = ("ais", "iis", "aic", "fid")
METRIC_ROLES = {
    "ais": ("wav2clip", "clip_b32"),
    "iis": ("clip_l14",),
    "aic": ("classifier", "clip_l14"),
    "fid": ("inception",),
}
HIGHER_IS_BETTER = {"ais": True, "iis": True, "aic": True, "fid": False}
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
    unknown = sorted(set(settings.metrics) - set(METRICS))
    if unknown or not settings.metrics:
        raise AudiobenchError(
            f"unknown metrics {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METRICS)}"
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
    evaluated, excluded = _select(run, table, {sample.id: sample for sample in samples})
    if len(evaluated) < 2:
        raise AudiobenchError(
            f"{run.path} has {len(evaluated)} evaluable samples, at least 2 are needed "
            f"({len(excluded)} excluded: {_summarise(excluded)})"
        )
    device = resolve_device(settings.device)
    zoo = ModelZoo(
        settings.profile or record["profile"],
        LoadOptions(device, torch.float32),
        settings.weights_dir,
    )
    zoo.require({role for metric in settings.metrics for role in METRIC_ROLES[metric]})
    with exclusive_lock(run.path):
        features = Features(zoo, run.path / "features", settings.batch_size)
        results: dict[str, Any] = {}
        columns: dict[str, list] = {}
        for metric in settings.metrics:
            results[metric], new_columns = _COMPUTE[metric](evaluated, features, settings)
            columns.update(new_columns)
        report = _metrics_record(record, settings, zoo, results, evaluated, excluded)
        run.write_samples(_with_columns(table, evaluated, columns))
        atomic_write_json(run.path / METRICS_FILE, report)
    return report


def _select(
    run: RunDirectory, table: pd.DataFrame, samples: dict[str, Sample]
) -> tuple[list[Evaluated], list[dict[str, str]]]:
    evaluated, excluded = [], []
    for row in table.itertuples(index=False):
        image = run.image_path(row.id)
        if row.status != "ok":
            reason = f"generation failed: {row.error}"
        elif row.id not in samples:
            reason = "not in the dataset index"
        else:
            reason = _unreadable(image)
        if reason:
            excluded.append({"id": row.id, "reason": reason})
        else:
            evaluated.append(Evaluated(samples[row.id], image))
    return evaluated, excluded


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


class Features:
    """Embeddings of images and audio by model role, computed in batches, cached on disk."""

    def __init__(self, zoo: ModelZoo, run_cache: Path, batch_size: int) -> None:
        self.zoo = zoo
        self.run_cache = run_cache
        self.shared_cache = cache_dir() / "features"
        self.batch_size = batch_size

    def generated(self, role: str, items: Sequence[Evaluated], compute_name: str) -> np.ndarray:
        paths = [item.image for item in items]
        return self._images(role, compute_name, self.run_cache, paths, "generated images")

    def frames(self, role: str, items: Sequence[Evaluated], compute_name: str) -> np.ndarray:
        paths = [item.sample.frame_path for item in items]
        return self._images(role, compute_name, self.shared_cache, paths, "reference frames")

    def texts(self, texts: list[str]) -> torch.Tensor:
        """CLIP ViT-L/14 text embeddings (the AIC name match)."""
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        embeddings = self._embed("clip_l14", "text", self.shared_cache, texts, keys, str, "names")
        return torch.from_numpy(embeddings)

    def _images(self, role, compute_name, folder, paths, what) -> np.ndarray:
        keys = [file_sha256(path) for path in paths]
        return self._embed(role, compute_name, folder, paths, keys, read_frame, what)

    def audio(self, role: str, items: Sequence[Evaluated]) -> np.ndarray:
        samples = [item.sample for item in items]
        keys = [f"{file_sha256(s.audio_path)}:{s.audio_start:g}-{s.audio_end:g}" for s in samples]
        return self._embed(
            role, "audio", self.shared_cache, samples, keys, Sample.read_audio, "audio windows"
        )

    def _embed(
        self,
        role: str,
        compute_name: str,
        folder: Path,
        inputs: Sequence[Any],
        keys: list[str],
        load: Callable[[Any], Any],
        what: str,
    ) -> np.ndarray:
        cache = FeatureCache(folder, f"{self.zoo.fingerprint(role)}-{compute_name}")
        todo = set(cache.missing(keys))
        pending = [
            (key, item) for key, item in dict(zip(keys, inputs, strict=True)).items() if key in todo
        ]
        if pending:
            compute = _COMPUTERS[compute_name](self.zoo.load(role))
            with progress_bar(len(pending), f"{role}: {what}") as advance:
                for start in range(0, len(pending), self.batch_size):
                    batch = pending[start : start + self.batch_size]
                    values = compute([load(item) for _, item in batch])
                    cache.put([key for key, _ in batch], values)
                    advance(len(batch))
        return cache.get(keys)


def _uint8_batch(images: Sequence[Image.Image]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images]


def _inception(model) -> Callable[[list], np.ndarray]:
    def compute(images: list[Image.Image]) -> np.ndarray:
        tensors = _uint8_batch(images)
        if len({tuple(t.shape) for t in tensors}) == 1:
            return model.features(torch.stack(tensors)).numpy()
        return np.concatenate([model.features(t[None]).numpy() for t in tensors])

    return compute


_COMPUTERS: dict[str, Callable[[Any], Callable[[list], np.ndarray]]] = {
    "image": lambda model: lambda images: model.embed_images(images).numpy(),
    "text": lambda model: lambda texts: model.embed_texts(texts).numpy(),
    "audio": lambda model: lambda clips: model.embed([torch.from_numpy(c) for c in clips]).numpy(),
    "top1": lambda model: lambda images: model.top1(images).numpy()[:, None].astype(np.float32),
    "inception": _inception,
}


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


def _ais(items, features: Features, settings):
    images = features.generated("clip_b32", items, "image")
    audio = features.audio("wav2clip", items)
    pool, pool_config = _pool(len(items), settings)
    _, wins = win_rate(torch.from_numpy(images), torch.from_numpy(audio), pool)
    config = {
        "image_role": "clip_b32",
        "audio_role": "wav2clip",
        "pool": pool_config,
        "audio": "the evaluation window of the dataset index (audio_start-audio_end)",
    }
    return _scored(wins, settings, config), {"ais_win": wins}


def _iis(items, features: Features, settings):
    generated = features.generated("clip_l14", items, "image")
    reference = features.frames("clip_l14", items, "image")
    pool, pool_config = _pool(len(items), settings)
    _, wins = win_rate(torch.from_numpy(generated), torch.from_numpy(reference), pool)
    config = {
        "image_role": "clip_l14",
        "reference": "dataset reference frames",
        "pool": pool_config,
    }
    return _scored(wins, settings, config), {"iis_win": wins}


def _aic(items, features: Features, settings):
    top1 = features.generated("classifier", items, "top1")[:, 0].astype(int)
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


def _fid(items, features: Features, settings):
    generated = torch.from_numpy(features.generated("inception", items, "inception"))
    reference = torch.from_numpy(features.frames("inception", items, "inception"))
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


_COMPUTE = {"ais": _ais, "iis": _iis, "aic": _aic, "fid": _fid}


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
        "excluded": excluded,
        "bootstrap": {"resamples": settings.n_resamples, "seed": settings.seed, "level": 0.95},
        "metrics": results,
        "models": zoo.provenance(),
        "audiobench_version": __version__,
        "versions": package_versions(),
    }


def _with_columns(table: pd.DataFrame, evaluated: list[Evaluated], columns: dict[str, list]):
    """The run's sample table with this evaluation's per-sample values (NaN where excluded)."""
    values = pd.DataFrame(columns, index=[item.sample.id for item in evaluated])
    table = table.drop(columns=[c for c in values.columns if c in table.columns])
    return table.join(values, on="id")
