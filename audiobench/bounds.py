"""Bounds of numeric options, declared beside the option and checked in one way.

The command line (`cli.py`) and methods' `Config` dataclasses both describe their limits with
`Bounds`, so a value out of range, NaN or infinite is refused with the same one-line message
("--batch-size must be at least 1, not 0") before any model is loaded or any file written.
A method declares a field's bounds with `bounded`:

    @dataclass(frozen=True)
    class MyConfig:
        steps: int = bounded(50, low=1)
        lr: float = bounded(0.1, low=0, low_inclusive=False)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from audiobench.errors import AudiobenchError

METADATA_KEY = "bounds"  # where `bounded` keeps a field's Bounds in its metadata


@dataclass(frozen=True)
class Bounds:
    """Allowed values: finite, from `low` (inclusive unless `low_inclusive` is false) up to
    `high` (inclusive), and a multiple of `multiple_of`; None leaves that side open."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    multiple_of: int | None = None

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        ):
            return False
        if self.high is not None and value > self.high:
            return False
        return self.multiple_of is None or value % self.multiple_of == 0

    def describe(self) -> str:
        """What an allowed value is, in words: "at least 1", "a positive number", ..."""
        parts = []
        if self.low == 0 and not self.low_inclusive:
            parts.append("a positive number")
        elif self.low is not None:
            parts.append(f"{'at least' if self.low_inclusive else 'greater than'} {self.low}")
        if self.high is not None:
            parts.append(f"at most {self.high}")
        if self.multiple_of is not None:
            parts.append(f"a multiple of {self.multiple_of}")
        return " and ".join(parts) or "a finite number"

    def check(self, name: str, value: float) -> None:
        """Raise the one-line error naming the option if `value` is not allowed."""
        if not self.admits(value):
            raise AudiobenchError(f"{name} must be {self.describe()}, not {value}")


def bounded(
    default: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    multiple_of: int | None = None,
) -> Any:
    """A dataclass field defaulting to `default` whose values must lie within these bounds."""
    bounds = Bounds(low, high, low_inclusive, multiple_of)
    return dataclasses.field(default=default, metadata={METADATA_KEY: bounds})


def check_fields(config: Any) -> None:
    """Check every field of a dataclass instance that `bounded` declared; errors name the field
    as "option NAME", the way `--set NAME=VALUE` spells it."""
    for field in dataclasses.fields(config):
        bounds = field.metadata.get(METADATA_KEY)
        if bounds is not None:
            bounds.check(f"option {field.name}", getattr(config, field.name))
