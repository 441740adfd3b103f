"""Timing and reporting helpers shared by the benchmarks."""

from __future__ import annotations

import json
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import torch

from audiobench.environment import package_versions


@dataclass(frozen=True)
class Measurement:
    name: str
    items: int
    seconds: float
    peak_rss_mib: float

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds


def measure(name: str, items: int, work: Callable[[], object], repeats: int = 3) -> Measurement:
    """Best wall time of `repeats` calls of `work` (after one warm-up call)."""
    work()
    best = min(_timed(work) for _ in range(repeats))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measurement(name, items, best, peak)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _run_and_measure(function, arguments, queue) -> None:
    try:
        result = function(*arguments)
    except BaseException as error:  # reported to the parent, which would otherwise wait forever
        queue.put(("failed", f"{type(error).__name__}: {error}"))
        raise
    queue.put(("done", (result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def in_own_process(function: Callable, *arguments) -> tuple[object, float]:
    """`function(*arguments)` in a fresh process: (its result, that process's peak RSS in MiB)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_and_measure, args=(function, arguments, queue))
    process.start()
    status, result = queue.get()
    process.join()
    if status == "failed":
        raise RuntimeError(f"{function.__name__} failed in its own process: {result}")
    return result


def machine() -> dict[str, object]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "versions": package_versions(),
    }


def report(
    measurements: list[Measurement],
    ratios: dict[str, float],
    as_json: bool,
    extra: dict[str, object] | None = None,
) -> None:
    """Print the measurements, ratios and any extra facts as a table or as one JSON object."""
    if as_json:
        rows = [{**asdict(m), "items_per_second": m.items_per_second} for m in measurements]
        payload = {"machine": machine(), "ratios": ratios, **(extra or {}), "measurements": rows}
        print(json.dumps(payload, indent=2))
        return
    print(f"{'measurement':40} {'items':>6} {'seconds':>9} {'items/s':>9} {'peak RSS MiB':>13}")
    for m in measurements:
        print(
            f"{m.name:40} {m.items:6d} {m.seconds:9.3f} {m.items_per_second:9.2f} "
            f"{m.peak_rss_mib:13.0f}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    for name, value in (extra or {}).items():
        print(f"{name}: {value}")
