"""Reading checkpoint files safely and loading them with errors that say what is wrong.

Every checkpoint a user supplies is read with `torch.load(weights_only=True)`: tensors and
plain containers only, never pickled code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from audiobench.errors import AudiobenchError


def load_state_dict(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} dict from a checkpoint (optionally the entry `key` of it)."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            content = load_file(str(path))
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as error:
        raise AudiobenchError(
            f"checkpoint {path} is unreadable (truncated, corrupt or not a weights file): "
            f"{str(error).splitlines()[0]}"
        ) from error
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
