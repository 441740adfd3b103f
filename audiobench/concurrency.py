"""A process-wide thread pool for the CPU work that feeds models (decoding, resizing).

PIL and numpy release the GIL in their heavy loops, so threads use every core for image
decoding and preprocessing while the main thread drives the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="audiobench")


def thread_map(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """`[function(item) for item in items]`, in order, spread over the pool."""
    return list(_executor().map(function, items))


def one_ahead(function: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
    """`function(item)` for each item in order, the next one computed in a thread meanwhile
    (so the CPU work of batch k + 1 overlaps the model's work on batch k)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audiobench-ahead") as ahead:
        pending = ahead.submit(function, items[0])
        for item in items[1:]:
            result = pending.result()
            pending = ahead.submit(function, item)
            yield result
        yield pending.result()
