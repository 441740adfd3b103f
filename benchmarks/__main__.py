"""Run the benchmark stages: `python -m audiobench.benchmarks [stage ...] [--json PATH] [--quick]`.

Each stage compares audiobench with a reference way of doing the same work on the same inputs,
checks that both give the same numbers, and prints a table with the speed ratios. Every stage
runs with its own scratch `AUDIOBENCH_CACHE`, so no stage reads the user's cache or another
stage's. Exit code 1 when a check failed (the ratios of a failed stage mean nothing).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

from audiobench.benchmarks.common import print_stage, scratch_cache, write_json

STAGES = {  # stage -> the module whose run(quick) measures it
    "data": "audiobench.benchmarks.data_bench",
    "generation": "audiobench.benchmarks.generation_bench",
    "training": "audiobench.benchmarks.train_bench",
    "evaluation": "audiobench.benchmarks.metrics_bench",
    "fid": "audiobench.benchmarks.fid_bench",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m audiobench.benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("stages", nargs="*", metavar="stage", help=f"{', '.join(STAGES)} (all)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for tests)")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    arguments.stages = list(dict.fromkeys(arguments.stages)) or list(STAGES)
    return arguments


def run_stage(name: str, quick: bool) -> dict:
    """One stage in a scratch cache, with its own wall time added."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, scratch_cache(Path(folder)):
        result = importlib.import_module(STAGES[name]).run(quick)
    return {**result, "stage_seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    start, results = time.perf_counter(), {}
    for name in arguments.stages:
        results[name] = run_stage(name, arguments.quick)
        print_stage(name, results[name])
    total = time.perf_counter() - start
    print(f"\ntotal: {total:.0f} s")
    if arguments.json:
        write_json(arguments.json, results, total)
    failed = [name for name, result in results.items() if not result["check"]]
    if failed:
        print(f"check failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
