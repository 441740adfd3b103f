"""Several processes on one job: `accelerate launch -m audiobench run|evaluate|train ...`.

A launcher (accelerate, torchrun) starts N copies of the command with `WORLD_SIZE`, `RANK` and
`LOCAL_RANK` set. audiobench then splits the work by its fixed batches: batch k belongs to
process k mod N. Because the batches are the same as in one process, and every random draw
depends only on the sample (or the training step), N processes produce exactly the files one
process would. The main process (rank 0) alone takes the run's lock and writes run.json,
samples.parquet, metrics.json and training checkpoints; the others write only files that
nobody else writes (images of their batches, feature-cache shards of their batches).

On GPUs each process uses `cuda:LOCAL_RANK` and NCCL; with `--device cpu`, gloo (which is how
the tests run two processes on one machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from audiobench.environment import resolve_device
from audiobench.errors import AudiobenchError
from audiobench.store import exclusive_lock


@dataclass(frozen=True)
class Processes:
    """This process's place among those working on one job."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, batch_index: int) -> bool:
        return batch_index % self.size == self.rank

    def wait(self) -> None:
        """Block until every process gets here."""
        if self.size > 1:
            torch.distributed.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order, on every process."""
        if self.size == 1:
            return [value]
        values: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(values, value)
        return values

    def from_main(self, value: Any) -> Any:
        """The main process's `value`, on every process."""
        return self.gather(value)[0]


SINGLE = Processes(0, 1)


def is_helper_process() -> bool:
    """True in every process of a launch but the main one: those print nothing."""
    return int(os.environ.get("RANK", "0")) != 0


def join(device: str) -> tuple[Processes, torch.device]:
    """Join the launcher's process group (or stand alone without one); this process's device."""
    wanted = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return SINGLE, wanted
    from accelerate import PartialState

    state = PartialState(cpu=wanted.type == "cpu")
    return Processes(state.process_index, state.num_processes), state.device


@contextmanager
def main_holds_lock(directory: Path, processes: Processes) -> Iterator[None]:
    """The run's lock, held by the main process for all; if it cannot be had, all stop."""
    with ExitStack() as stack:
        problem = ""
        if processes.is_main:
            try:
                stack.enter_context(exclusive_lock(directory))
            except AudiobenchError as error:
                problem = str(error)
        problem = processes.from_main(problem)
        if problem:
            raise AudiobenchError(problem)
        yield


T = TypeVar("T")


def on_main(processes: Processes, action: Callable[[], T]) -> T:
    """`action()` on the main process, its result (or its AudiobenchError) on every process."""
    outcome: tuple[T | None, str] = (None, "")
    if processes.is_main:
        try:
            outcome = (action(), "")
        except AudiobenchError as error:
            if processes.size == 1:
                raise
            outcome = (None, str(error))
    result, problem = processes.from_main(outcome)
    if problem:
        raise AudiobenchError(problem)
    return result
