"""Reading checkpoint files safely and loading them with errors that say what is wrong.

Every checkpoint a user supplies is read with `torch.load(weights_only=True)`: tensors and
plain containers only, never pickled code.

Checkpoints saved by PyTorch Lightning 1.x (taming's VQGAN `last.ckpt`, for one) key their
`callbacks` entry by the callback *class*, and may hold hyper-parameters as an `AttributeDict`
or an `argparse.Namespace`, so their pickles name those globals. They are allowed here under
their qualified names as inert stand-ins defined below: nothing is imported from Lightning
(which need not be installed), the stand-ins only hold the data the pickle gives them, and no
code from the file runs. A pickle naming any other global is refused with the global's name.

Loaders of other libraries (open_clip, timm, torch-fidelity) read their files themselves;
`check_checkpoint` reads each such file here first, so an unreadable or refused one fails with
one line naming it instead of a traceback from inside the library.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiobench.errors import AudiobenchError


class LightningObject:
    """Inert stand-in for a Lightning class named in a checkpoint (a callback used as a dict
    key, typically): it can be referred to and holds restored state, and does nothing else."""

    def __setstate__(self, state: object) -> None:
        self.__dict__["state"] = state


class ArgparseNamespace:
    """Inert stand-in for `argparse.Namespace` (hyper-parameters of older scripts)."""

    def __setstate__(self, state: object) -> None:
        self.__dict__["state"] = state


_LIGHTNING_CLASSES = [
    f"{package}.callbacks.{module}.{name}"
    for package in ("pytorch_lightning", "lightning.pytorch")
    for module, name in (
        ("model_checkpoint", "ModelCheckpoint"),
        ("early_stopping", "EarlyStopping"),
        ("lr_monitor", "LearningRateMonitor"),
        ("progress", "ProgressBar"),
        ("progress.tqdm_progress", "TQDMProgressBar"),
    )
]
# (stand-in, qualified name) pairs, the form `torch.serialization.safe_globals` takes.
CHECKPOINT_GLOBALS: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
    *((LightningObject, name) for name in _LIGHTNING_CLASSES),
    # Lightning's AttributeDict (hyper-parameters) is read as the plain dict it derives from
    (dict, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (dict, "lightning_fabric.utilities.data.AttributeDict"),
    (ArgparseNamespace, "argparse.Namespace"),
]
_REFUSED_GLOBAL = re.compile(r"(?:GLOBAL|Unsupported class|Unsupported global:?) ([\w.]+)")


class CheckpointRefused(AudiobenchError):
    """A checkpoint whose pickle asks for code: never loaded, and never passed over silently."""


def check_checkpoint(path: Path) -> None:
    """Fail with one line naming `path` if it is unreadable or refused, before a library's own
    loader reads it. Tensors are mapped, not read (safetensors: the header only), so this costs
    little even for a multi-gigabyte file."""
    read_checkpoint(path, mmap=True)


def read_checkpoint(path: Path, *, mmap: bool = False) -> object:
    """The content of a checkpoint file (weights only; see the module's docstring).

    `mmap=True` maps the tensors of a zip-format file instead of reading them, so reading a
    multi-gigabyte file's keys and shapes costs little.
    """
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path, mmap)
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise _refusal(path, error) from error
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        if mmap and "mmap" in str(error):  # an old, non-zip file: read it whole
            return read_checkpoint(path)
        raise AudiobenchError(
            f"checkpoint {path} is unreadable (truncated, corrupt or not a weights file): "
            f"{str(error).splitlines()[0]}"
        ) from error


def _read_safetensors(path: Path, header_only: bool) -> dict[str, torch.Tensor]:
    """A safetensors file; with `header_only`, tensors on the meta device with the right
    shapes and dtypes (only the JSON header is read)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        if not header_only:
            return load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            return {
                name: torch.empty(handle.get_slice(name).get_shape(), device="meta")
                for name in handle.keys()  # noqa: SIM118 (safe_open has no __iter__)
            }
    except SafetensorError as error:  # a damaged header: unreadable like any damaged file
        raise ValueError(str(error)) from error


def _refusal(path: Path, error: pickle.UnpicklingError) -> AudiobenchError:
    """The error for a pickle that wants more than tensors, naming what it asked for."""
    text = str(error)
    found = _REFUSED_GLOBAL.search(text)
    if found is None:
        return AudiobenchError(
            f"checkpoint {path} is unreadable (truncated, corrupt or not a weights file): "
            f"{text.splitlines()[0]}"
        )
    return CheckpointRefused(
        f"checkpoint {path} was refused: its pickle asks for {found.group(1)}, which is not a "
        "tensor, a plain container or a known Lightning or argparse class; loading it could "
        "run code from the file, so it is not loaded (re-save the state dict as .safetensors "
        "or with torch.save of tensors only)"
    )


def load_state_dict(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict from a checkpoint (optionally the entry `key` of it)."""
    content = read_checkpoint(path)
    if key is not None:
        if not isinstance(content, dict) or key not in content:
            raise AudiobenchError(f"checkpoint {path} has no {key!r} entry")
        content = content[key]
    if not isinstance(content, dict) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise AudiobenchError(f"checkpoint {path} is not a state dict of tensors")
    return content


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load every parameter of `model` from `state`, naming missing, extra or misshapen keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [
        f"{name} {tuple(state[name].shape)} (expected {tuple(tensor.shape)})"
        for name, tensor in expected.items()
        if name in state and state[name].shape != tensor.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if misshapen:
        problems.append(f"wrong shapes: {', '.join(misshapen[:3])}")
    if problems:
        raise AudiobenchError(
            f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(problems)}"
        )
    model.load_state_dict(state)
