"""One progress display for every long loop, drawn on stderr so stdout stays parseable.

On an interactive terminal it is a rich bar. Anywhere else (a log file, a pipe, a CI job) a bar
redrawn in place shows nothing until the loop ends, so progress is written as plain lines, e.g.
`generate wav2clip-vqgan: 3/12 samples, iteration 40/60`: at most one per `PLAIN_INTERVAL`
seconds, and the last state when the loop ends.

A loop gets a `Progress`: `advance(n)` (or calling it) counts finished units; `note(text)`
describes the unit in flight (an optimisation's iteration) until the next unit finishes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress

PLAIN_INTERVAL = 5.0  # seconds between plain progress lines: often enough to see a run move
Clock = Callable[[], float]


class Progress(ABC):
    """Where a loop reports how far it is."""

    def __call__(self, amount: int) -> None:
        self.advance(amount)

    @abstractmethod
    def advance(self, amount: int) -> None:
        """`amount` more units are finished; the note is cleared (it described one of them)."""

    @abstractmethod
    def note(self, text: str) -> None:
        """Describe the unit in flight, e.g. "iteration 40/60"."""


class _Bar(Progress):
    def __init__(self, progress: RichProgress, total: int | None, description: str, done: int):
        self._progress = progress
        self._task = progress.add_task(description, total=total, completed=done, note="")

    def advance(self, amount: int) -> None:
        self._progress.update(self._task, advance=amount, note="")

    def note(self, text: str) -> None:
        self._progress.update(self._task, note=text)


class _PlainLines(Progress):
    """Progress as plain lines on `stream`, at most one per `PLAIN_INTERVAL` seconds of `clock`
    (the first report writes one at once); `finish` writes the last state if not yet written."""

    def __init__(
        self,
        description: str,
        count: Callable[[int], str],
        stream: IO[str],
        clock: Clock,
        done: int = 0,
    ) -> None:
        self._description, self._count = description, count
        self._stream, self._clock = stream, clock
        self._done, self._note = done, ""
        self._written_at: float | None = None
        self._written = ""

    def advance(self, amount: int) -> None:
        self._done += amount
        self._note = ""
        self._report()

    def note(self, text: str) -> None:
        self._note = text
        self._report()

    def finish(self) -> None:
        if self._line() != self._written:
            self._write(self._clock())

    def _line(self) -> str:
        note = f", {self._note}" if self._note else ""
        return f"{self._description}: {self._count(self._done)}{note}"

    def _report(self) -> None:
        now = self._clock()
        if self._written_at is None or now - self._written_at >= PLAIN_INTERVAL:
            self._write(now)

    def _write(self, now: float) -> None:
        self._written, self._written_at = self._line(), now
        print(self._written, file=self._stream, flush=True)


@contextmanager
def progress_bar(
    total: int,
    description: str,
    unit: str = "",
    *,
    stream: TextIO | None = None,
    clock: Clock = time.monotonic,
) -> Iterator[Progress]:
    """Units done of `total` and the time left (plain lines: "3/12 samples" for unit "samples");
    `stream` (stderr when None) and `clock` are the tests' way in."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    unit_name = f" {unit}" if unit else ""
    with _display(
        columns, total, description, lambda done: f"{done}/{total}{unit_name}", stream, clock
    ) as progress:
        yield progress


@contextmanager
def byte_progress_bar(total: int | None, description: str, done: int = 0) -> Iterator[Progress]:
    """Like `progress_bar` for a download: bytes done of `total` (None: unknown) and the speed."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    of_total = f"/{total / 1e6:.1f}" if total is not None else ""
    with _display(
        columns, total, description, lambda n: f"{n / 1e6:.1f}{of_total} MB", done=done
    ) as progress:
        yield progress


@contextmanager
def _display(
    columns: tuple[ProgressColumn, ...],
    total: int | None,
    description: str,
    count: Callable[[int], str],
    stream: TextIO | None = None,
    clock: Clock = time.monotonic,
    done: int = 0,
) -> Iterator[Progress]:
    """A rich bar when the stream is an interactive terminal, else plain lines (`count` writes
    the units done)."""
    console = Console(file=stream, stderr=stream is None)
    if console.is_interactive:
        with RichProgress(*columns, console=console, transient=False) as progress:
            yield _Bar(progress, total, description, done)
        return
    lines = _PlainLines(description, count, console.file, clock, done=done)
    try:
        yield lines
    finally:
        lines.finish()
