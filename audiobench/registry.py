"""Methods are plugins: classes found through the `audiobench.methods` entry-point group.

A pip-installable package adds a method by declaring, in its pyproject.toml,

    [project.entry-points."audiobench.methods"]
    my-method = "my_package.module:MyMethod"

where `MyMethod` subclasses `Method`. audiobench's own methods register the same way, so the core
never imports a method by name. Entry points are only loaded when a method is asked for (or
when all are listed), so a broken third-party plugin cannot break the others.

An entry point may instead name a `MethodCard`: the method's declaration (description, model
roles, whether it trains) in a module that is cheap to import, naming its class as a string.
audiobench's own methods do this, so `audiobench methods` lists them without importing their
code, torch included; the class is imported when the method is used.
"""

from __future__ import annotations

import dataclasses
import math
import pkgutil
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from audiobench.bounds import check_fields
from audiobench.errors import AudiobenchError, unknown_name

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from audiobench.data import Sample
    from audiobench.distributed import Processes
    from audiobench.models import ModelZoo

ENTRY_POINT_GROUP = "audiobench.methods"
_METHOD_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class NoConfig:
    """Configuration of a method that has no options."""


def _single_process() -> Processes:
    from audiobench.distributed import SINGLE  # imports torch: not while methods are listed

    return SINGLE


@dataclass
class MethodContext:
    """What a method gets to set itself up: models by role, device and optional checkpoint, and
    its place among the processes of a multi-process launch (for `train`)."""

    models: ModelZoo
    device: torch.device
    dtype: torch.dtype
    checkpoint: Path | None = None
    processes: Processes = field(default_factory=_single_process)
    # An optimising method calls this after each step of a batch with (steps done, steps in
    # all), so the run's progress moves between batches that take minutes.
    report_step: Callable[[int, int], None] = lambda done, total: None


@dataclass(frozen=True)
class MethodCard:
    """What listing, checking and training need to know about a method, without its code.

    `implementation` names the `Method` subclass as "package.module:Class"; it is imported only
    when the method is used. The class takes `description` and `roles` from its card
    (`class MyMethod(Method, card=MY_CARD)`), so they are written once.
    """

    description: str
    implementation: str
    roles: tuple[str, ...] = ()
    trainable: bool = False  # declares a `TrainConfig`, so `audiobench train` accepts it


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

    Subclasses set `description` (one line) and `roles` (model roles they use, so `models check`
    can report them), or take both from their `MethodCard` (`class M(Method, card=CARD)`), and
    `Config` (a dataclass of options with their paper defaults, numeric
    ones declared with `audiobench.bounds.bounded`); for reports, `table_name` (the row label)
    and `conditioning`: "audio" for audio-to-image methods (ranked against each other), "text"
    for text toplines, "reference" for the real frames. `tiny_defaults` maps options to the
    values they take on the `tiny` profile unless `--set` gives them: its models are toy-sized,
    so a paper default sized for real ones (500 optimisation steps, 512 px) would only make the
    demo slow.

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
    tiny_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, card: MethodCard | None = None, **kwargs: Any) -> None:
        """`card=`: the class's description and roles are its card's, and the card's
        `trainable` must agree with whether the class declares a `TrainConfig`."""
        super().__init_subclass__(**kwargs)
        if card is None:
            return
        cls.description = card.description
        cls.roles = card.roles
        if card.trainable != (cls.TrainConfig is not None):
            raise TypeError(
                f"{cls.__qualname__}: its card says trainable={card.trainable}, but it "
                f"{'declares no' if card.trainable else 'declares a'} TrainConfig"
            )

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
    """A registered method: its name, where it comes from, its card and, once loaded, its
    class."""

    name: str
    entry_point: EntryPoint

    @property
    def distribution(self) -> str:
        dist = self.entry_point.dist
        return dist.name if dist is not None else "unknown distribution"

    @cached_property
    def card(self) -> MethodCard:
        """The declared card, or for an entry point naming a class (third-party plugins), one
        read from the class (which imports it)."""
        declared = self._imported(self.entry_point.value, self.entry_point.load)
        if isinstance(declared, MethodCard):
            return declared
        method_class = self._checked(declared)
        return MethodCard(
            description=method_class.description,
            implementation=self.entry_point.value,
            roles=method_class.roles,
            trainable=method_class.TrainConfig is not None,
        )

    def load(self) -> type[Method]:
        implementation = self.card.implementation
        imported = self._imported(implementation, lambda: pkgutil.resolve_name(implementation))
        return self._checked(imported)

    def _imported(self, target: str, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except Exception as error:  # a third-party plugin can fail in any way while importing
            raise AudiobenchError(
                f"method {self.name!r} from {self.distribution} failed to import "
                f"({target}): {error}"
            ) from error

    def _checked(self, imported: Any) -> type[Method]:
        if not (isinstance(imported, type) and issubclass(imported, Method)):
            raise AudiobenchError(
                f"method {self.name!r} ({self.entry_point.value}) is not a subclass of "
                "audiobench.registry.Method (nor a MethodCard naming one)"
            )
        return imported


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


def trainable_methods() -> list[str]:
    """The registered methods that `audiobench train` accepts (read from their cards)."""
    return [name for name, info in discover().items() if info.card.trainable]


def build_config(
    config_class: type, overrides: dict[str, str], profile_defaults: dict[str, Any] | None = None
) -> Any:
    """A method's config dataclass (`Config` or `TrainConfig`) with `KEY=VALUE` overrides
    converted to the field types and checked against the bounds its fields declare (before any
    model is loaded); `profile_defaults` (e.g. `Method.tiny_defaults`) replace the class's
    defaults where no override is given."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    defaults = config_class()
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in fields:
            raise unknown_name("option", key, list(fields))
        values[key] = _convert(key, text, type(getattr(defaults, key)))
    config = dataclasses.replace(defaults, **{**(profile_defaults or {}), **values})
    check_fields(config)
    return config


_VALUE_NAMES = {int: "an integer", float: "a number"}  # the types whose parsing can fail


def _convert(key: str, text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise AudiobenchError(f"option {key} takes true or false, not {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        value = kind(text)
    except ValueError as error:
        expected = _VALUE_NAMES.get(kind, kind.__name__)
        raise AudiobenchError(f"option {key} takes {expected}, not {text!r}") from error
    if kind is float and not math.isfinite(value):
        raise AudiobenchError(f"option {key} takes a finite number, not {text!r}")
    return value
