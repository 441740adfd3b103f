"""A process-wide thread pool for the CPU work that feeds models (decoding, resizing).

PIL and numpy release the GIL in their heavy loops, so threads use every core for image
decoding and preprocessing while the main thread drives the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
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
