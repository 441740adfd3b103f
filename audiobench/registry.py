"""Methods are plugins: classes found through the `audiobench.methods` entry-point group.

A pip-installable package adds a method by declaring, in its pyproject.toml,

    [project.entry-points."audiobench.methods"]
    my-method = "my_package.module:MyMethod"

where `MyMethod` subclasses `Method`. audiobench's own methods register the same way, so the core
never imports a method by name. Entry points are only loaded when a method is asked for (or
when all are listed), so a broken third-party plugin cannot break the others.
"""

from __future__ import annotations

import dataclasses
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from audiobench.bounds import check_fields
from audiobench.distributed import SINGLE, Processes
from audiobench.errors import AudiobenchError, unknown_name

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from audiobench.data import Sample
    from audiobench.models import ModelZoo

ENTRY_POINT_GROUP = "audiobench.methods"
_METHOD_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class NoConfig:
    """Configuration of a method that has no options."""


@dataclass
class MethodContext:
    """What a method gets to set itself up: models by role, device and optional checkpoint, and
    its place among the processes of a multi-process launch (for `train`)."""

    models: ModelZoo
    device: torch.device
    dtype: torch.dtype
    checkpoint: Path | None = None
    processes: Processes = SINGLE


@dataclass(frozen=True)
class TrainRequest:
    """What `audiobench train` hands a trainable method: the data, the options every training
    has, and `config`, the method's own `TrainConfig` with the --set overrides applied."""

    method: str
    data_dir: Path
    split: str
    seed: int
    mixed_precision: str
    config: Any


class Method(ABC):
    """An audio-to-image method: load inputs per sample, generate images per batch.

    Subclasses set `description` (one line), `roles` (model roles they use, so `models check`
    can report them) and `Config` (a dataclass of options with their paper defaults, numeric
    ones declared with `audiobench.bounds.bounded`); for reports, `table_name` (the row label)
    and `conditioning`: "audio" for audio-to-image methods (ranked against each other), "text"
    for text toplines, "reference" for the real frames.

    A trainable method also sets `TrainConfig` (a dataclass of training options with the paper's
    defaults, overridden by `audiobench train --set`) and `resume_may_change`, the fields of it
    that a `--resume` may change because they decide how long or how often, not what a step
    computes (e.g. the number of steps, the checkpoint interval).
    """

    description: ClassVar[str]
    roles: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type] = NoConfig
    table_name: ClassVar[str | None] = None
    conditioning: ClassVar[str] = "audio"
    TrainConfig: ClassVar[type | None] = None
    resume_may_change: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()
        check_fields(self.config)  # a config built in Python meets the bounds too

    @abstractmethod
    def setup(self, context: MethodContext) -> None:
        """Load models; called once per run before any sample."""

    def prepare(self, sample: Sample) -> Any:
        """Read and check one sample's inputs; raise `SampleError` to fail just this sample."""
        return sample

    @abstractmethod
    def generate(self, inputs: Sequence[Any], seeds: Sequence[int]) -> list[Image.Image]:
        """One image per prepared input; `seeds[i]` alone decides the randomness of image i."""

    def train(self, context: MethodContext, request: TrainRequest, out: Path) -> Path:
        """Train on `request.data_dir`, write weights under `out`, return the weights' folder.
        Called only when the method declares a `TrainConfig`."""
        raise NotImplementedError


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its name, where it comes from, and its class once loaded."""

    name: str
    entry_point: EntryPoint

    @property
    def distribution(self) -> str:
        dist = self.entry_point.dist
        return dist.name if dist is not None else "unknown distribution"

    def load(self) -> type[Method]:
        try:
            method_class = self.entry_point.load()
        except Exception as error:  # a third-party plugin can fail in any way while importing
            raise AudiobenchError(
                f"method {self.name!r} from {self.distribution} failed to import "
                f"({self.entry_point.value}): {error}"
            ) from error
        if not (isinstance(method_class, type) and issubclass(method_class, Method)):
            raise AudiobenchError(
                f"method {self.name!r} ({self.entry_point.value}) is not a subclass of "
                "audiobench.registry.Method"
            )
        return method_class


def discover() -> dict[str, MethodInfo]:
    """All methods declared through entry points, validated, by name."""
    found: dict[str, MethodInfo] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        info = MethodInfo(entry_point.name, entry_point)
        if not _METHOD_NAME.fullmatch(info.name):
            raise AudiobenchError(
                f"method name {info.name!r} from {info.distribution} is invalid: use lowercase "
                "letters, digits and single hyphens"
            )
        if info.name in found and found[info.name].entry_point.value != entry_point.value:
            raise AudiobenchError(
                f"method {info.name!r} is registered twice: by {found[info.name].distribution} "
                f"({found[info.name].entry_point.value}) and by {info.distribution} "
                f"({entry_point.value})"
            )
        found[info.name] = info
    return dict(sorted(found.items()))


def get_method(name: str) -> type[Method]:
    """The class of a registered method, or an error listing the known ones."""
    methods = discover()
    if name not in methods:
        raise unknown_name("method", name, list(methods))
    return methods[name].load()


def build_config(config_class: type, overrides: dict[str, str]) -> Any:
    """A method's config dataclass (`Config` or `TrainConfig`) with `KEY=VALUE` overrides
    converted to the field types and checked against the bounds its fields declare (before any
    model is loaded)."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    defaults = config_class()
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in fields:
            raise AudiobenchError(
                f"unknown option {key!r} for this method; options: {', '.join(fields) or 'none'}"
            )
        values[key] = _convert(key, text, type(getattr(defaults, key)))
    config = dataclasses.replace(defaults, **values)
    check_fields(config)
    return config


def _convert(key: str, text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise AudiobenchError(f"option {key} takes true or false, not {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        value = kind(text)
    except ValueError as error:
        raise AudiobenchError(f"option {key} takes a {kind.__name__}, not {text!r}") from error
    if kind is float and not math.isfinite(value):
        raise AudiobenchError(f"option {key} takes a finite number, not {text!r}")
    return value
