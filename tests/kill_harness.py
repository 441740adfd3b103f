"""Kill trials: SIGKILL an audiobench command at seeded random moments, restart, compare.

    python -m tests.kill_harness run|evaluate|train|prepare WORKDIR [--kills 20] [--seed 0]

prints a JSON report. For one command: make its inputs, run it once uninterrupted (the
reference), then run it in chains until it has been killed `--kills` times: a chain starts in a
fresh output folder and kills the command `KILLS_PER_CHAIN` times, each after a random delay
drawn from [0, reference time) and each followed by a restart; the last restart runs to the end,
and the chain's outputs are compared with the reference. Every attempt is a fork of this
process, which imports audiobench but never runs torch itself (so the forks inherit no thread
pools), so an attempt costs its work and not an interpreter start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from audiobench.cli import main
from audiobench.store import TEMP_MARK

TIMEOUT = 1800.0  # the last attempt of a chain must finish: a bound that only catches a hang
KILLS_PER_CHAIN = 4


@dataclass(frozen=True)
class Scenario:
    """How to make a command's inputs, call it on an output folder, and read its results."""

    prepare: Callable[[Path], None]
    argv: Callable[[Path, Path], list[str]]  # (work folder, output folder) -> arguments
    results: Callable[[Path], dict]  # output folder -> what must equal the reference
    fresh_cache: bool = False  # each attempt chain gets its own feature cache


def forked(action: Callable[[], None], log: Path, cache: Path) -> int:
    """Start `action` in a fork (stdout/stderr to `log`, AUDIOBENCH_CACHE=`cache`); its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.environ["AUDIOBENCH_CACHE"] = str(cache)
        action()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # reported through the log and the exit code
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int, deadline: float | None) -> int | None:
    """The exit code, or None (after SIGKILL) if still running at `deadline`."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


def complete(action: Callable[[], None], log: Path, cache: Path) -> float:
    start = time.monotonic()
    code = wait(forked(action, log, cache), start + TIMEOUT)
    if code != 0:
        raise SystemExit(f"uninterrupted attempt failed (exit {code}); see {log}")
    return time.monotonic() - start


def trials(scenario: Scenario, work: Path, kills: int, seed: int) -> dict:
    logs, caches = work / "logs", work / "caches"
    logs.mkdir(parents=True)
    caches.mkdir()
    complete(lambda: scenario.prepare(work), logs / "prepare.log", caches / "reference")
    reference = work / "reference"
    command = scenario.argv(work, reference)
    seconds = complete(lambda: main(command), logs / "reference.log", caches / "reference")
    expected = scenario.results(reference)
    rng = random.Random(seed)
    report = {"kills": 0, "attempts": 0, "chains": 0, "reference_seconds": seconds, "errors": []}
    while report["kills"] < kills:
        report["chains"] += 1
        chain = report["chains"]
        out = work / f"chain-{chain}"
        cache = caches / (f"chain-{chain}" if scenario.fresh_cache else "reference")
        command = scenario.argv(work, out)
        for attempt in range(KILLS_PER_CHAIN + 1):
            report["attempts"] += 1
            pid = forked(partial(main, command), logs / f"chain-{chain}.log", cache)
            last = attempt == KILLS_PER_CHAIN
            code = wait(pid, time.monotonic() + (TIMEOUT if last else rng.uniform(0, seconds)))
            if code is None and not last:
                report["kills"] += 1
                continue
            if code != 0:
                report["errors"].append(f"chain {chain}: exit {code}, see its log")
            else:
                report["errors"] += differences(expected, scenario.results(out), chain)
                report["errors"] += leftovers(out, chain)
            break
    return report


def differences(expected: dict, found: dict, chain: int) -> list[str]:
    return [
        f"chain {chain}: {name} differs from the uninterrupted run"
        for name in sorted(expected.keys() | found.keys())
        if expected.get(name) != found.get(name)
    ]


def leftovers(out: Path, chain: int) -> list[str]:
    """Half-written files must never survive a finished attempt."""
    return [
        f"chain {chain}: temporary file {path.relative_to(out)} left behind"
        for path in out.rglob("*")
        if TEMP_MARK in path.name or path.name.endswith(".tmp")
    ]


def digests(folder: Path, pattern: str) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob(pattern))
        if path.is_file()
    }


def table(path: Path, drop: tuple[str, ...] = ()) -> str:
    frame = pd.read_parquet(path)
    return frame.drop(columns=[c for c in drop if c in frame.columns]).to_json()


# --- the four commands -------------------------------------------------------------------

RUN_DIR = "sd-text-test-tiny-seed0"
RUN_ARGS = ["--method", "sd-text", "--profile", "tiny", "--batch-size", "2", "--set", "steps=2"]


def write_demo(work: Path) -> None:
    from audiobench.data.demo import write_demo_dataset

    write_demo_dataset(work / "demo")


def run_argv(work: Path, out: Path) -> list[str]:
    return ["run", *RUN_ARGS, "--data", str(work / "demo"), "--out", str(out)]


def run_results(out: Path) -> dict:
    return {
        **digests(out / RUN_DIR, "images/*.png"),
        "samples.parquet": table(out / RUN_DIR / "samples.parquet", drop=("seconds",)),
        "run.json images": json.loads((out / RUN_DIR / "run.json").read_text())["images"],
    }


def prepare_evaluation(work: Path) -> None:
    write_demo(work)
    main(run_argv(work, work / "generated"))


def evaluate_argv(work: Path, out: Path) -> list[str]:
    if not out.exists():  # every attempt chain evaluates its own copy of the run
        shutil.copytree(work / "generated" / RUN_DIR, out, ignore=shutil.ignore_patterns(".lock"))
    return ["evaluate", str(out), "--batch-size", "4", "--metrics", "ais,iis,aic"]


def evaluate_results(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "metrics": metrics["metrics"],
        "images": metrics["images"],
        "excluded": metrics["excluded"],
        "samples.parquet": table(out / "samples.parquet", drop=("seconds",)),
    }


def prepare_training(work: Path) -> None:
    """The demo, and the training features cached by a one-step warm-up."""
    write_demo(work)
    main([*train_argv(work, work / "warm-up"), "--set", "steps=1"])


def train_argv(work: Path, out: Path) -> list[str]:
    return [
        "train", "--method", "audiotoken", "--profile", "tiny", "--data", str(work / "demo"),
        "--out", str(out), "--set", "steps=8", "--set", "batch_size=2",
        "--set", "checkpoint_every=1",
        "--resume",
    ]  # fmt: skip


def train_results(out: Path) -> dict:
    return {
        **digests(out, "embedder_learned_embeds.bin"),
        "loss.csv": (out / "loss.csv").read_text(),
        "checkpoints": sorted(p.name for p in (out / "checkpoints").iterdir()),
    }


def prepare_clips(work: Path) -> None:
    """Six 10 s VGGSound-style mp4s (one of them silent) and their clip list."""
    import numpy as np

    from tests.media import voice, write_mp4

    videos = work / "videos"
    videos.mkdir()
    rows = []
    for k in range(6):
        ytid = f"kill{k:07d}"
        audio = voice(100.0 + 30 * k, 10.0, k) * (0 if k == 4 else 1)
        write_mp4(videos / f"{ytid}_000030.mp4", audio.astype(np.float32))
        rows.append(f"{ytid},30,speech,{'test' if k % 3 == 0 else 'train'}\n")
    (work / "list.csv").write_text("".join(rows))


def prepare_argv(work: Path, out: Path) -> list[str]:
    return [
        "data", "prepare", "vggsound", "--csv", str(work / "list.csv"),
        "--video-dir", str(work / "videos"), "--out", str(out), "--frame-select", "centre",
        "--train-frame-select", "centre",
        "--workers", "1",
    ]  # fmt: skip


def prepare_results(out: Path) -> dict:
    return {
        **digests(out, "*/*.*"),
        "index.parquet": table(out / "index.parquet"),
        "train_crops.parquet": table(out / "train_crops.parquet"),
        "skipped.csv": (out / "skipped.csv").read_text(),
    }


SCENARIOS = {
    "run": Scenario(write_demo, run_argv, run_results),
    "evaluate": Scenario(prepare_evaluation, evaluate_argv, evaluate_results, fresh_cache=True),
    "train": Scenario(prepare_training, train_argv, train_results),
    "prepare": Scenario(prepare_clips, prepare_argv, prepare_results),
}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(SCENARIOS))
    parser.add_argument("work", type=Path)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    report = trials(SCENARIOS[arguments.command], arguments.work, arguments.kills, arguments.seed)
    print(json.dumps(report))


if __name__ == "__main__":
    cli()
