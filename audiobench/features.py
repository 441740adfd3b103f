"""Embeddings for the metrics: computed once per input and model, in batches, cached on disk.

A feature is named by what produced it (`<role>-<weights hash>-<kind>`) and keyed by the
content hash of its input, so renamed files hit the cache and new weights never meet old
features. Every feature, of generated images and of dataset inputs alike, lives in audiobench's
own cache, never in a run folder: a run folder may come from a stranger, and features planted
in it would decide the metrics unseen.

Each missing input is decoded once for all the models that need it; decoding and preprocessing
run on all cores, one batch ahead of the models.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from audiobench.concurrency import one_ahead, thread_map
from audiobench.data import Sample, read_frame
from audiobench.distributed import SINGLE, Processes
from audiobench.models import ModelZoo
from audiobench.models.zoo import cache_dir, registered_roles
from audiobench.progress import progress_bar
from audiobench.store import FeatureCache, file_sha256


@dataclass(frozen=True)
class FeatureKind:
    """One model output: the role that computes it and which of its outputs."""

    role: str
    kind: str  # "image", "text", "audio", "top1" or "inception"


@dataclass(frozen=True)
class Computer:
    """How one kind of feature is computed from a batch of loaded inputs, in two stages: the CPU
    stage (`prepare`: resizing, normalising) of the next batch runs while `forward` (the model)
    works on this one, so a GPU is not left waiting for the CPU."""

    forward: Callable[[Any], np.ndarray]  # prepared batch -> an array with one row per input
    prepare: Callable[[list], Any] = list
    # Computers with the same key prepare identically, so a batch is prepared once for them all.
    prepare_key: Hashable | None = None


def _inception(model) -> Computer:
    def prepare(images: list[Image.Image]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images]

    def forward(tensors: list[torch.Tensor]) -> np.ndarray:
        if len({tuple(t.shape) for t in tensors}) == 1:
            return model.features(torch.stack(tensors)).numpy()
        return np.concatenate([model.features(t[None]).numpy() for t in tensors])

    return Computer(forward, prepare)


def _top1(classifier) -> Computer:
    def forward(pixels: torch.Tensor) -> np.ndarray:
        return classifier.top1_of_pixels(pixels).numpy()[:, None].astype(np.float32)

    return Computer(forward, classifier.pixels)


# kind -> (model -> its Computer)
COMPUTERS: dict[str, Callable[[Any], Computer]] = {
    "image": lambda model: Computer(
        lambda pixels: model.embed_pixels(pixels).numpy(), model.pixels, model.preprocess_key
    ),
    "text": lambda model: Computer(lambda texts: model.embed_texts(texts).numpy()),
    "audio": lambda model: Computer(
        lambda clips: model.embed([torch.from_numpy(c) for c in clips]).numpy()
    ),
    "top1": _top1,
    "inception": _inception,
}


def register_kind(kind: str, computer: Callable[[Any], Computer]) -> None:
    """Let a plugin cache features of its own kind (e.g. a method's frozen encoder outputs)."""
    if kind in COMPUTERS and COMPUTERS[kind] is not computer:
        raise ValueError(f"feature kind {kind!r} is registered twice")
    COMPUTERS[kind] = computer


@dataclass(frozen=True)
class InputSet:
    """Inputs of one source, their content keys (what the cache is keyed by) and how a batch
    of them is decoded."""

    keys: list[str]
    items: list[Any]
    load: Callable[[list], list]
    what: str  # for the progress bar

    @classmethod
    def image_files(cls, paths: Sequence[Path], what: str) -> InputSet:
        return cls(
            thread_map(file_sha256, paths), list(paths), lambda b: thread_map(read_frame, b), what
        )

    @classmethod
    def images(cls, images: Sequence[Image.Image], what: str) -> InputSet:
        """In-memory images, keyed by their mode, size and pixels."""
        keys = [
            hashlib.sha256(f"{i.mode}:{i.size}:".encode() + i.tobytes()).hexdigest() for i in images
        ]
        return cls(keys, list(images), lambda b: [image.convert("RGB") for image in b], what)

    @classmethod
    def audio_windows(cls, samples: Sequence[Sample]) -> InputSet:
        """The evaluation windows of dataset samples, keyed by file content and window."""
        keys = [f"{file_sha256(s.audio_path)}:{s.audio_start:g}-{s.audio_end:g}" for s in samples]
        return cls(keys, list(samples), lambda b: thread_map(Sample.read_audio, b), "audio windows")

    @classmethod
    def audio_arrays(cls, clips: Sequence[np.ndarray]) -> InputSet:
        """16 kHz mono float32 waveforms, keyed by their samples."""
        arrays = [np.ascontiguousarray(clip, dtype=np.float32) for clip in clips]
        keys = [hashlib.sha256(b"pcm16k:" + clip.tobytes()).hexdigest() for clip in arrays]
        return cls(keys, arrays, list, "audio")


# Bump when the code that turns an input into a feature changes: old cached features are then
# never served again. The role's `preprocessing` settings are hashed in beside it.
FEATURE_CODE_VERSION = 2


def feature_version(kind: FeatureKind) -> str:
    """`v<code version>-<hash of the role's preprocessing settings>`: part of every cache name."""
    role = registered_roles().get(kind.role)
    settings = json.dumps(dict(role.preprocessing) if role else {}, sort_keys=True, default=str)
    return f"v{FEATURE_CODE_VERSION}-{hashlib.sha256(settings.encode()).hexdigest()[:8]}"


class Features:
    """Looks features up in the cache and computes (and stores) the missing ones."""

    def __init__(
        self,
        zoo: ModelZoo,
        batch_size: int,
        processes: Processes = SINGLE,
        cache: Path | None = None,
    ) -> None:
        """`cache` holds the features (default: audiobench's cache). With several `processes`,
        each computes its share of the batches and all read the union from disk."""
        self.zoo = zoo
        self.processes = processes
        self.cache = cache or cache_dir() / "features"
        self.batch_size = batch_size
        self.used: set[str] = set()  # the cache names read or written (metrics.json records them)
        self._caches: dict[FeatureKind, FeatureCache] = {}

    def of(self, inputs: InputSet, kinds: Sequence[FeatureKind]) -> list:
        """Features of every kind for one input set."""
        return self.compute(inputs.keys, inputs.items, kinds, inputs.load, inputs.what)

    def texts(self, kind: FeatureKind, texts: list[str]) -> np.ndarray:
        """Text embeddings of names (the AIC match), cached by the text's hash."""
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        [values] = self.compute(keys, texts, [kind], list, "names")
        return values

    def _cache(self, kind: FeatureKind) -> FeatureCache:
        if kind not in self._caches:
            name = f"{self.zoo.fingerprint(kind.role)}-{kind.kind}-{feature_version(kind)}"
            self.used.add(name)
            self._caches[kind] = FeatureCache(self.cache, name)
        return self._caches[kind]

    def compute(
        self,
        keys: list[str],
        inputs: Sequence[Any],
        kinds: Sequence[FeatureKind],
        load: Callable[[list], list],
        what: str,
    ) -> list[np.ndarray]:
        """Features of `inputs` for every kind; each missing input is loaded once for all.

        The distinct inputs are cut into fixed batches in order, and a batch with anything
        missing is computed whole: every feature always comes from the same batch, so an
        evaluation resumed after a kill gives the bits of an uninterrupted one.
        """
        caches = [self._cache(kind) for kind in kinds]
        missing = [set(cache.missing(keys)) for cache in caches]
        distinct = list(dict(zip(keys, inputs, strict=True)).items())
        batches = [
            distinct[start : start + self.batch_size]
            for start in range(0, len(distinct), self.batch_size)
        ]
        mine = [
            batch
            for index, batch in enumerate(batches)
            if self.processes.owns(index) and any(key in m for key, _ in batch for m in missing)
        ]
        if mine:
            computers = [COMPUTERS[kind.kind](self.zoo.load(kind.role)) for kind in kinds]
            roles = ", ".join(sorted({kind.role for kind in kinds}))
            prepare = partial(_prepared_batch, load=load, computers=computers, missing=missing)
            with progress_bar(sum(map(len, mine)), f"{roles}: {what}") as advance:
                for batch_keys, prepared in one_ahead(prepare, mine):
                    for cache, inputs, computer in zip(caches, prepared, computers, strict=True):
                        if inputs is not None:
                            cache.put(batch_keys, computer.forward(inputs))
                    advance(len(batch_keys))
        if self.processes.size > 1:  # read what the other processes computed
            self.processes.wait()
            self._caches.clear()
            caches = [self._cache(kind) for kind in kinds]
        return [cache.get(keys) for cache in caches]


def _prepared_batch(
    batch: list[tuple[str, Any]],
    load: Callable[[list], list],
    computers: list[Computer],
    missing: list[set[str]],
) -> tuple[list[str], list[Any]]:
    """The batch's keys and, per computer, its prepared inputs (None where nothing is missing).
    The inputs are loaded once; computers with one `prepare_key` share one preparation."""
    keys = [key for key, _ in batch]
    loaded = load([item for _, item in batch])
    shared: dict[Hashable, Any] = {}
    prepared: list[Any] = []
    for computer, wanted in zip(computers, missing, strict=True):
        if not wanted.intersection(keys):
            prepared.append(None)
            continue
        key = ("own", id(computer)) if computer.prepare_key is None else computer.prepare_key
        if key not in shared:
            shared[key] = computer.prepare(loaded)
        prepared.append(shared[key])
    return keys, prepared
