"""Shared fixtures: an isolated cache, the demo dataset, the real VGGSound files, a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# bounds on subprocesses and waits that only catch a hang: a loaded machine may be many times slower
HANG_SECONDS = 3600
SHARED_DATA = REPO.parent / "shared" / "data" / "vggsound"


def pytest_configure(config: pytest.Config) -> None:
    """Tests never read the user's caches or weights and never reach the network. Set before
    collection, because huggingface_hub reads its settings once, when a test module imports it."""
    home = Path(tempfile.mkdtemp(prefix="audiobench-tests-"))
    os.environ["AUDIOBENCH_CACHE"] = str(home / "audiobench-cache")
    os.environ["HF_HOME"] = str(home / "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TORCH_HOME"] = str(home / "torch")
    os.environ.pop("AUDIOBENCH_WEIGHTS", None)
    os.environ["COLUMNS"] = "200"  # rich wraps tables to the terminal width (80 when piped)
    # One intra-op thread per process unless the caller chose: the tests' tensors are small, and
    # on a loaded 2-core machine OpenMP's spinning worker threads make ops many times slower.
    # Test subprocesses inherit the variables; this process is already running, so it is told.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from audiobench.data.demo import write_demo_dataset

    path = tmp_path_factory.mktemp("demo") / "demo"
    write_demo_dataset(path)
    return path


@pytest.fixture(scope="session")
def rated_runs(demo_dir, tmp_path_factory) -> list[Path]:
    """A reference and an sd-text run of the demo's test split: the two methods of the
    human-evaluation tests, made once and only read (exports never write into a run)."""
    from audiobench.runner import RunSettings, execute

    out = tmp_path_factory.mktemp("rated-runs")
    return [
        execute(
            RunSettings(
                method=method,
                data_dir=demo_dir,
                out=out,
                profile="tiny",
                options={"steps": "2"} if method == "sd-text" else {},
            )
        ).run_dir
        for method in ("reference", "sd-text")
    ]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real VGGSound files not found at {SHARED_DATA} (only in the project's CI)")
    return SHARED_DATA


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from audiobench.cli import main

    def invoke(*args) -> tuple[int, str, str]:
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def run_subprocess(*args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m audiobench ARGS` in a fresh interpreter (for kills and entry-point scans)."""
    return subprocess.run(
        [sys.executable, "-m", "audiobench", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def dead_pid() -> int:
    """The pid of a process that has exited (what a killed writer's temporaries are named by)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
