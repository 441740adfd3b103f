"""What a run records about the software and hardware it ran on."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from audiobench.errors import AudiobenchError

RECORDED_PACKAGES = (
    "audiobench",
    "torch",
    "torchvision",
    "torchaudio",
    "diffusers",
    "transformers",
    "accelerate",
    "open_clip_torch",
    "timm",
    "torch-fidelity",
    "speechbrain",
    "numpy",
    "pillow",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict[str, str | bool] | None:
    """The commit of the audiobench source tree, and whether it had uncommitted changes."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # an installed wheel, or no git on this machine
    return {"commit": commit, "dirty": bool(status.strip())}


def resolve_device(name: str) -> torch.device:
    """`auto` picks the first GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise AudiobenchError(f"unknown device {name!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AudiobenchError(f"device {name!r} requested but no CUDA GPU is available")
    return device


def default_dtype(device: torch.device) -> torch.dtype:
    """Half precision on GPUs (as the published pipelines run), full precision on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.float32


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
