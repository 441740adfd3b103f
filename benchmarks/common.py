"""Timing and reporting helpers shared by the benchmark stages."""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

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
    return Measurement(name, items, best, peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident memory so far. Linux's VmHWM, because `ru_maxrss` survives
    exec: a spawned child would report at least its parent's peak."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def timed_call(imports: Sequence[str], function: Callable, *arguments) -> tuple[object, float]:
    """(`function(*arguments)`, its seconds), importing `imports` first: a fresh process pays
    for its Python imports once, which is not the work being compared."""
    for module in imports:
        importlib.import_module(module)
    start = time.perf_counter()
    result = function(*arguments)
    return result, time.perf_counter() - start


def _run_and_measure(function, arguments, queue) -> None:
    try:
        result = function(*arguments)
    except BaseException as error:  # reported to the parent, which would otherwise wait forever
        queue.put(("failed", f"{type(error).__name__}: {error}"))
        raise
    queue.put(("done", (result, peak_rss_mib())))


def in_own_process(function: Callable, *arguments) -> tuple[object, float]:
    """`function(*arguments)` in a fresh process: (its result, that process's peak RSS in MiB),
    so that each side's memory is its own and no side inherits another's warm state."""
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


@contextmanager
def scratch_cache(folder: Path) -> Iterator[Path]:
    """Point `AUDIOBENCH_CACHE` (inherited by spawned processes) at `folder` for a stage, so a
    stage starts cold and never reads or fills the user's cache."""
    previous = os.environ.get("AUDIOBENCH_CACHE")
    os.environ["AUDIOBENCH_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("AUDIOBENCH_CACHE", None)
        else:
            os.environ["AUDIOBENCH_CACHE"] = previous


def machine() -> dict[str, object]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": package_versions(),
    }


def stage_result(
    measurements: list[Measurement], ratios: dict[str, float], check: bool, **facts: object
) -> dict[str, object]:
    """What every stage returns: its measurements, ratios, whether both sides agreed, facts."""
    rows = [{**asdict(m), "items_per_second": m.items_per_second} for m in measurements]
    return {"measurements": rows, "ratios": ratios, "check": bool(check), **facts}


def print_stage(name: str, result: dict[str, object]) -> None:
    """One stage as a table, then its ratios, check and other facts."""
    print(f"\n== {name} ==")
    width = max(len(row["name"]) for row in result["measurements"])
    header = f"{'items':>6} {'seconds':>9} {'items/s':>9} {'peak RSS MiB':>13}"
    print(f"{'measurement':{width}} {header}")
    for row in result["measurements"]:
        print(
            f"{row['name']:{width}} {row['items']:6d} {row['seconds']:9.3f} "
            f"{row['items_per_second']:9.2f} {row['peak_rss_mib']:13.0f}"
        )
    for ratio, value in result["ratios"].items():
        print(f"{ratio}: {value:.2f}x")
    for fact, value in result.items():
        if fact not in ("measurements", "ratios"):
            print(f"{fact}: {value}")


def write_json(path: Path, stages: dict[str, dict], seconds: float) -> None:
    """Every stage's result with the machine, date and package versions."""
    payload = {**machine(), "total_seconds": round(seconds, 1), "stages": stages}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
