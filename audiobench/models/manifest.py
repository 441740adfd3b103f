"""Checkpoint layouts: what each role's loader reads from its weight files, checked before a job.

A role's *manifest* is the state-dict keys and shapes its `paper` loader reads, after the
loader's own filtering (ImageBind: the audio branch; VQGAN: without `loss.*`). It comes from the
published architecture built on the meta device (no memory, no weights), so it is the loader's
own expectation, and tests hold it against key lists made from the authors' code
(`tests/fixtures/manifests/`). `check_files` compares the weight files present with it by
reading only their headers (safetensors) or mapping them (torch zip files), so a wrong or
truncated download is named before a long job starts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from audiobench.errors import AudiobenchError
from audiobench.models.checkpoints import read_checkpoint
from audiobench.models.zoo import (
    RANDOM_SEED,
    LoadOptions,
    Role,
    get_role,
    modules_of,
)

Shapes = dict[str, tuple[int, ...]]


def role_manifest(role_name: str) -> dict[str, Shapes]:
    """Component -> key -> shape that `load_paper` reads (components as in the role's layout)."""
    role = get_role(role_name)
    model = _build_architecture(role)
    return {
        component: {
            published_key(key): tuple(tensor.shape) for key, tensor in module.state_dict().items()
        }
        for component, module in modules_of(model)
        if component in role.layout.files
    }


def published_key(key: str) -> str:
    """A key as published files have it: torch's parametrised weight norm
    (`X.parametrizations.weight.original0/1`, which speechbrain's BEATs uses) is stored by the
    authors' code as `X.weight_g/weight_v`; torch loads either form into the module."""
    for new, old in _WEIGHT_NORM.items():
        if key.endswith(new):
            return key.removesuffix(new) + old
    return key


_WEIGHT_NORM = {
    ".parametrizations.weight.original0": ".weight_g",
    ".parametrizations.weight.original1": ".weight_v",
}


def manifest_document(role_name: str) -> dict:
    """`models manifest --json`: {"role", "keys"} for one-file roles, {"role", "components"}
    for pipelines; shapes as lists."""
    manifest = role_manifest(role_name)
    as_lists = {
        component: {key: list(shape) for key, shape in sorted(shapes.items())}
        for component, shapes in manifest.items()
    }
    if len(as_lists) == 1:
        return {"role": role_name, "keys": next(iter(as_lists.values()))}
    return {"role": role_name, "components": as_lists}


def _build_architecture(role: Role):
    """The published architecture with no weights: on the meta device, or on the CPU where a
    library's initialisation cannot run on it (speechbrain's BEATs copies through the CPU).

    The tiny model is built on the CPU first, which imports the role's libraries: a module
    first imported on the meta device keeps the tensors it makes at import time there for the
    rest of the process (torchaudio's Kaldi module its EPSILON, on which every later fbank,
    ImageBind's and BEATs', fails; diffusers some lookup tables)."""
    cpu = LoadOptions(torch.device("cpu"), torch.float32)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # "copying to a meta parameter is a no-op", and similar
        role.build_tiny(cpu)
        torch.manual_seed(RANDOM_SEED)
        try:
            with torch.device("meta"):
                return role.build_paper_random(LoadOptions(torch.device("meta"), torch.float32))
        except NotImplementedError:
            return role.build_paper_random(cpu)


@dataclass(frozen=True)
class FileCheck:
    """How one component's weight file compares with the manifest."""

    component: str
    file: Path | None  # None: no candidate file exists
    missing: list[str]
    unexpected: list[str]
    misshapen: list[str]

    @property
    def ok(self) -> bool:
        return self.file is not None and not (self.missing or self.unexpected or self.misshapen)

    def describe(self) -> str:
        name = f"{self.component}: " if self.component else ""
        if self.file is None:
            return f"{name}no weight file"
        if self.ok:
            return f"{name}{self.file.name} matches"
        parts = [
            f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})"
            for label, keys in (
                ("missing keys", self.missing),
                ("unexpected keys", self.unexpected),
                ("keys of the wrong shape", self.misshapen),
            )
            if keys
        ]
        return f"{name}{self.file} has {'; '.join(parts)}"


def check_files(role_name: str, location: Path) -> list[FileCheck]:
    """Compare the weight files at a role's located path with its manifest, reading headers."""
    role = get_role(role_name)
    manifest = role_manifest(role_name)
    return [
        _check_component(role, component, manifest[component], Path(location))
        for component in role.layout.files
    ]


def _check_component(role: Role, component: str, expected: Shapes, location: Path) -> FileCheck:
    layout = role.layout
    candidates = [location / name if name else location for name in layout.files[component]]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        return FileCheck(component, None, [], [], [])
    present = {
        key.removeprefix(layout.legacy_prefix) if layout.legacy_prefix else key: shape
        for key, shape in file_shapes(found, layout.entry).items()
    }
    if layout.prefixes:
        present = {k: v for k, v in present.items() if k.startswith(layout.prefixes)}
    present = {k: v for k, v in present.items() if not _starts(k, layout.ignored)}
    missing = sorted(
        key for key in set(expected) - set(present) if not _starts(key, layout.optional)
    )
    unexpected = sorted(set(present) - set(expected))
    misshapen = [
        f"{key} {present[key]} (expected {shape})"
        for key, shape in sorted(expected.items())
        if key in present and present[key] != shape
    ]
    return FileCheck(component, found, missing, unexpected, misshapen)


def _starts(key: str, prefixes: tuple[str, ...]) -> bool:
    return bool(prefixes) and key.startswith(prefixes)


def file_shapes(path: Path, entry: str | None = None) -> Shapes:
    """Key -> shape of the tensors in a weight file, without reading the tensors' data."""
    content = read_checkpoint(path, mmap=True)
    if entry is not None:
        if not isinstance(content, dict) or entry not in content:
            raise AudiobenchError(f"checkpoint {path} has no {entry!r} entry")
        content = content[entry]
    if not isinstance(content, dict):
        raise AudiobenchError(f"checkpoint {path} is not a state dict of tensors")
    return {
        published_key(str(key)): tuple(value.shape)
        for key, value in content.items()
        if isinstance(value, torch.Tensor)
    }
