"""`audiobench.score`: the registered metrics of any images, with no run directory.

`score` turns what a user has (folders, file lists, PIL images, tensors, waveforms) into input
sets, embeds each input once per model through the feature cache, and hands the embeddings to
each metric's `compute`. `audiobench evaluate` is the layer between a run directory and
`score_sets`, and `audiobench distance` calls it with two unpaired folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiobench.errors import AudiobenchError
from audiobench.features import FeatureKind, Features, InputSet
from audiobench.metrics.plugin import (
    Metric,
    MetricInputs,
    MetricResult,
    ScoreSettings,
    get_metric,
    parse_metrics,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class Sources:
    """The inputs of one scoring, row i of each belonging to sample `ids[i]` when paired."""

    ids: list[str]
    generated: InputSet
    frames: InputSet | None = None
    audio: InputSet | None = None
    labels: list[str] | None = None
    paired: bool = True
    reference: str = "the reference frames of the same samples"


def needed_sources(metrics: Sequence[type[Metric]]) -> set[str]:
    return {source for metric in metrics for source in metric.inputs}


def score_sets(
    names: Sequence[str], sources: Sources, features: Features, settings: ScoreSettings
) -> dict[str, MetricResult]:
    """Every named metric of the input sets, each input embedded once per model."""
    metrics = [get_metric(name) for name in names]
    _check_sources(metrics, sources)
    vectors: dict[tuple[str, FeatureKind], np.ndarray] = {}
    for source in ("generated", "frames", "audio"):
        kinds = list(dict.fromkeys(k for m in metrics for k in m.inputs.get(source, ())))
        if kinds:
            computed = features.of(getattr(sources, source), kinds)
            vectors.update({(source, k): v for k, v in zip(kinds, computed, strict=True)})
    inputs = MetricInputs(
        sources.ids, vectors, sources.labels, features.texts, sources.paired, sources.reference
    )
    results = {}
    for metric in metrics:
        try:
            result = metric().compute(inputs, settings)
        except AudiobenchError:
            raise
        except Exception as error:  # a plugin's compute can fail in any way
            raise AudiobenchError(f"metric {metric.name!r} failed: {error}") from error
        if set(result.per_sample) != set(metric.columns):
            raise AudiobenchError(
                f"metric {metric.name!r} returned the columns {sorted(result.per_sample)}, "
                f"not the ones it declares {sorted(metric.columns)}"
            )
        results[metric.name] = result
    return results


def _check_sources(metrics: Sequence[type[Metric]], sources: Sources) -> None:
    for metric in metrics:
        missing = [s for s in metric.inputs if s != "generated" and getattr(sources, s) is None]
        if missing:
            raise AudiobenchError(f"metric {metric.name!r} needs {' and '.join(missing)}")
        if not sources.paired and (metric.columns or set(metric.inputs) - {"generated", "frames"}):
            raise AudiobenchError(
                f"metric {metric.name!r} compares each image with its own sample's inputs; "
                "the two image sets are not paired (equal counts, equal file names)"
            )


def score(
    generated: Any,
    *,
    frames: Any = None,
    audio: Any = None,
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    profile: str = "paper",
    device: str = "auto",
    batch_size: int = 32,
) -> dict[str, dict[str, Any]]:
    """Score generated images with registered metrics (default: the paper's AIS, IIS, AIC, FID).

    Each of `generated` and `frames` is a folder (its .png/.jpg files, sorted by name), a list
    of image paths, a list of PIL images, or a (N, 3, H, W) tensor (uint8, or float in [0, 1]).
    `audio` is a folder or list of audio files, or a list of 16 kHz mono waveforms (arrays or
    tensors). Image i, frame i, audio i and label i belong to one sample; folders pair by file
    name. Returns {metric: {value, n, ci95, config, higher_is_better, per_sample}}.
    """
    names = parse_metrics(",".join(metrics) if metrics is not None else None)
    ids, images = _image_set(generated, "generated images")
    sources = Sources(ids, images, labels=list(labels) if labels is not None else None)
    if frames is not None:
        frame_ids, sources.frames = _image_set(frames, "reference frames")
        sources.paired = frame_ids == ids or (
            not _is_folder(generated) and len(frame_ids) == len(ids)
        )
        sources.reference = "the reference frames given"
    if audio is not None:
        sources.audio = _audio_set(audio)
    for name, given in (("audio clips", sources.audio), ("labels", sources.labels)):
        count = len(given.keys if isinstance(given, InputSet) else given or ids)
        if count != len(ids):
            raise AudiobenchError(f"{count} {name} for {len(ids)} generated images")
    return _scored(names, sources, profile, device, batch_size)


def distance(
    folder_a: Path,
    folder_b: Path,
    metrics: Sequence[str],
    *,
    profile: str = "paper",
    device: str = "auto",
    batch_size: int = 32,
    weights_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of two unpaired image folders as whole sets (FID, KID, CMMD): `audiobench
    distance`. The intervals resample each folder independently."""
    ids, images = _image_set(image_files(folder_a), "images")
    _, other = _image_set(image_files(folder_b), "images")
    sources = Sources(ids, images, other, paired=False, reference=f"the images of {folder_b}")
    return _scored(list(metrics), sources, profile, device, batch_size, weights_dir)


def _scored(
    names: Sequence[str],
    sources: Sources,
    profile: str,
    device: str,
    batch_size: int,
    weights_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    from audiobench.distributed import SINGLE
    from audiobench.environment import resolve_device
    from audiobench.models import LoadOptions, ModelZoo

    metrics = [get_metric(name) for name in names]
    _check_sources(metrics, sources)
    zoo = ModelZoo(profile, LoadOptions(resolve_device(device), torch.float32), weights_dir)
    zoo.require({role for metric in metrics for role in metric.roles()})
    features = Features(zoo, batch_size, SINGLE)
    results = score_sets(names, sources, features, ScoreSettings())
    return {
        name: {
            **result.record(get_metric(name)),
            "per_sample": {column: list(values) for column, values in result.per_sample.items()},
        }
        for name, result in results.items()
    }


def _is_folder(value: Any) -> bool:
    return isinstance(value, str | Path) and Path(value).is_dir()


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name; an error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudiobenchError(f"image folder {folder} does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise AudiobenchError(f"{folder} holds no .png or .jpg images")
    return files


def _image_set(value: Any, what: str) -> tuple[list[str], InputSet]:
    """Ids and input set of a folder, paths, PIL images or an image tensor."""
    from PIL import Image

    if _is_folder(value):
        value = image_files(Path(value))
    elif isinstance(value, str | Path):
        raise AudiobenchError(f"image folder {value} does not exist")
    if isinstance(value, torch.Tensor):
        value = [_tensor_image(image) for image in value]
    items = list(value)
    if len(items) < 2:
        raise AudiobenchError(f"at least 2 {what} are needed, got {len(items)}")
    if all(isinstance(item, str | Path) for item in items):
        paths = [Path(item) for item in items]
        return [path.stem for path in paths], InputSet.image_files(paths, what)
    items = [_tensor_image(item) if isinstance(item, torch.Tensor) else item for item in items]
    if not all(isinstance(item, Image.Image) for item in items):
        raise AudiobenchError(f"{what} must be a folder, paths, PIL images or image tensors")
    return [str(index) for index in range(len(items))], InputSet.images(items, what)


def _tensor_image(tensor: torch.Tensor):
    """A (3, H, W) uint8 or [0, 1] float tensor as a PIL image (floats rounded as torchvision's
    `to_pil_image` does after scaling by 255)."""
    from PIL import Image

    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise AudiobenchError(f"image tensors must be (3, H, W), got {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        tensor = (tensor.clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(tensor.permute(1, 2, 0).cpu().numpy(), "RGB")


def _audio_set(value: Any) -> InputSet:
    """Waveforms from a folder, audio file paths, or arrays/tensors (16 kHz mono)."""
    from audiobench.data.media import read_wav

    if _is_folder(value):
        value = sorted(p for p in Path(value).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    items = list(value)
    if items and all(isinstance(item, str | Path) for item in items):
        paths = [Path(item) for item in items]
        keys = [f"{digest}:whole" for digest in _hashes(paths)]
        return InputSet(keys, paths, lambda batch: [read_wav(p) for p in batch], "audio")
    arrays = [item.cpu().numpy() if isinstance(item, torch.Tensor) else item for item in items]
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
        raise AudiobenchError("audio must be a folder, audio file paths, or 1-D 16 kHz waveforms")
    return InputSet.audio_arrays(arrays)


def _hashes(paths: Sequence[Path]) -> list[str]:
    from audiobench.concurrency import thread_map
    from audiobench.store import file_sha256

    return thread_map(file_sha256, paths)
