"""`audiobench train`: hands a method its training data, models and settings.

The core knows nothing of how a method trains, nor of its options: a trainable method declares
its own `TrainConfig` (steps, learning rate, ... with the paper's defaults), which `--set`
overrides. The core resolves the models (profile, device, precision), checks the data and the
output folder, and calls `Method.train`. It also owns what makes a training folder trustworthy
whatever the method: one process at a time trains into it (the lock `run` takes), and
`train.json`, written before the first step, records the settings that decide the result, so
`--resume` continues only the training that is there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from audiobench.data import index_sha256, load_index
from audiobench.distributed import join, main_holds_lock, on_main
from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import (
    Method,
    MethodContext,
    TrainRequest,
    build_config,
    get_method,
    trainable_methods,
)
from audiobench.store import atomic_write_json, make_directory, read_json

PRECISIONS = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
RECORD_FILE = "train.json"
# Settings every training has that decide what the trained weights are: a resumed training keeps
# each of them, the dataset's index, the models' weights and the method's training config (but
# the fields the method lists in `resume_may_change`). --device changes only where steps happen.
IDENTITY_SETTINGS = ("method", "seed", "mixed_precision", "profile", "split")


@dataclass
class TrainSettings:
    """Options of `audiobench train` that every trainable method has; `options` holds the
    `--set KEY=VALUE` overrides of the method's own `TrainConfig`."""

    method: str
    data_dir: Path
    out: Path
    split: str = "train"
    profile: str = "paper"
    mixed_precision: str = "no"
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    weights_dir: Path | None = None
    options: dict[str, str] = field(default_factory=dict)


def train(settings: TrainSettings) -> Path:
    """Train a method; returns the folder holding its final weights."""
    method_class = get_method(settings.method)
    if method_class.TrainConfig is None:
        raise AudiobenchError(
            f"method {settings.method!r} is not trainable; trainable methods: "
            f"{', '.join(trainable_methods()) or 'none'}"
        )
    config = build_config(method_class.TrainConfig, settings.options)
    if settings.mixed_precision not in PRECISIONS:
        raise AudiobenchError(f"--mixed-precision must be one of {', '.join(PRECISIONS)}")
    load_index(settings.data_dir, settings.split)  # fails early on a bad dataset
    processes, device = join(settings.device)
    if device.type == "cpu" and settings.mixed_precision == "fp16":
        raise AudiobenchError("--mixed-precision fp16 needs a GPU; use bf16 or no on the CPU")
    out = make_directory(settings.out)
    with main_holds_lock(out, processes):
        zoo = ModelZoo(
            settings.profile,
            LoadOptions(device, PRECISIONS[settings.mixed_precision]),
            settings.weights_dir,
        )
        zoo.require(method_class.roles)
        session = {
            "started": _now(),
            "dataset": str(Path(settings.data_dir).resolve()),
            **{name: getattr(config, name) for name in method_class.resume_may_change},
            "device": str(device),
            "processes": processes.size,
        }
        record = on_main(
            processes,
            lambda: _open_record(
                out,
                settings.resume,
                _identity(settings, config, method_class, zoo),
                session,
                zoo.provenance(),
            ),
        )
        method = method_class(build_config(method_class.Config, {}))
        context = MethodContext(zoo, device, zoo.options.dtype, processes=processes)
        request = TrainRequest(
            settings.method,
            settings.data_dir,
            settings.split,
            settings.seed,
            settings.mixed_precision,
            config,
        )
        folder = method.train(context, request, out)
        if processes.is_main:
            _finish_record(out, record, config)
        return folder


def _identity(
    settings: TrainSettings, config: Any, method_class: type[Method], zoo: ModelZoo
) -> dict[str, Any]:
    """What the trained weights depend on, as `train.json` records it."""
    return {
        **{name: getattr(settings, name) for name in IDENTITY_SETTINGS},
        "config": {
            name: value
            for name, value in dataclasses.asdict(config).items()
            if name not in method_class.resume_may_change
        },
        "dataset_sha256": index_sha256(settings.data_dir),
        "weights": {role: zoo.identify(role).sha256 for role in method_class.roles},
    }


def _open_record(
    out: Path,
    resume: bool,
    identity: dict[str, Any],
    session: dict[str, Any],
    models: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write `train.json` for this session before any step, after checking that the folder is
    empty (or, with --resume, holds the same training); returns the record written."""
    path = out / RECORD_FILE
    previous = read_json(path) if path.exists() else None
    if previous is None and any(item.name != ".lock" for item in out.iterdir()):
        raise AudiobenchError(
            f"{out} holds files but no {RECORD_FILE}: it is no training folder (or one whose "
            "settings cannot be checked); train into an empty or new --out"
        )
    if previous is not None and not resume:
        raise AudiobenchError(
            f"{out} already holds a training run: use --resume to continue it or another --out"
        )
    if previous is not None:
        _check_same_training(path, previous, identity)
    record = {
        "identity": identity,
        "sessions": [*(previous or {}).get("sessions", []), session],
        "models": models,
    }
    atomic_write_json(path, record)
    return record


def _check_same_training(path: Path, previous: Any, identity: dict[str, Any]) -> None:
    """Refuse a resume under other settings: the steps before and after would belong to two
    different trainings, and the final weights to neither."""
    if not (isinstance(previous, dict) and isinstance(previous.get("identity"), dict)):
        raise AudiobenchError(
            f"{path} records no training settings to check --resume against; use another --out"
        )
    before, after = _labelled(previous["identity"]), _labelled(identity)
    changes = [
        f"{label} {_shown(before.get(label))} -> {_shown(after.get(label))}"
        for label in dict.fromkeys([*after, *before])
        if before.get(label) != after.get(label)
    ]
    if changes:
        raise AudiobenchError(
            f"cannot resume {path.parent}: {', '.join(changes)}; resume with the training's "
            "own settings, or train into another --out"
        )


def _labelled(identity: dict[str, Any]) -> dict[str, Any]:
    """Identity entries under the names a user knows them by: options, dataset, role weights."""
    weights, config = identity.get("weights"), identity.get("config")
    return {
        **{f"--{name.replace('_', '-')}": identity.get(name) for name in IDENTITY_SETTINGS},
        **{
            f"option {name}": value
            for name, value in (config if isinstance(config, dict) else {}).items()
        },
        "dataset index sha256": identity.get("dataset_sha256"),
        **{
            f"{role} weights sha256": digest
            for role, digest in (weights if isinstance(weights, dict) else {}).items()
        },
    }


def _shown(value: Any) -> str:
    """A value for a one-line message: hashes shortened to 12 digits."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return "none" if value is None else str(value)


def _finish_record(out: Path, record: dict[str, Any], config: Any) -> None:
    """Mark the weights in `out` as those of the whole training `config` (its steps included),
    trained in the recorded sessions."""
    *earlier, session = record["sessions"]
    atomic_write_json(
        out / RECORD_FILE,
        {
            **record,
            "config": dataclasses.asdict(config),
            "sessions": [*earlier, {**session, "finished": _now()}],
        },
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
