"""Import speechbrain without its side effects on the whole process.

Importing `speechbrain.core` (which speechbrain does lazily, on first use of many modules) turns
TF32 matrix products on globally (its "allow_tf32" quirk), so
every later float32 computation on an Ampere+ GPU (metrics included) would round differently
depending on whether an AudioToken method had been loaded. audiobench restores the flags.

speechbrain also puts placeholder modules into `sys.modules` that import their target on any
attribute access and raise ImportError when it cannot be imported (`k2_fsa` without k2), so
`getattr(module, "__file__", None)` over `sys.modules`, which tools such as hypothesis do,
fails. Unloaded placeholders get `__file__ = None`, which a module without a file has anyway.
"""

from __future__ import annotations

import importlib
import sys
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
        _give_placeholders_a_file()


def _give_placeholders_a_file() -> None:
    for name, module in list(sys.modules.items()):
        attributes = vars(module) if isinstance(module, ModuleType) else {}
        if name.startswith("speechbrain") and attributes.get("lazy_module", False) is None:
            attributes.setdefault("__file__", None)
