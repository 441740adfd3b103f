"""Import speechbrain without its side effect on the whole process.

Importing `speechbrain.core` (which speechbrain does lazily, on first use of many modules) turns
TF32 matrix products on globally (its "allow_tf32" quirk), so
every later float32 computation on an Ampere+ GPU (metrics included) would round differently
depending on whether an AudioToken method had been loaded. audiobench restores the flags.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch


def speechbrain_module(name: str) -> ModuleType:
    """`importlib.import_module(name)` with the TF32 flags as they were before; `speechbrain.core`
    is imported here too, so that its quirks cannot run later, outside this guard."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        importlib.import_module("speechbrain.core")
        return importlib.import_module(name)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
