"""The paper-scale CPU smoke test: every generating method at the published sizes and
resolutions (`paper-random`: published architectures, random weights), then evaluation of the
AudioToken run with the paper-size metric models (the metrics' code paths are the same for
every run, so one evaluation proves them and keeps the test under 15 minutes on 2 cores). It
takes minutes, so it is marked `paper_smoke`, left out of the default run and run by CI as its
own step (`pytest -m paper_smoke -s`), which prints each command's wall time and peak memory
(the numbers the README quotes).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest
from PIL import Image

from audiobench.data.demo import write_demo_dataset

pytestmark = pytest.mark.paper_smoke

# method -> (published resolution, --set options of the smoke run)
METHODS = {
    "sd-text": (512, ["steps=2"]),
    "audiotoken": (512, ["steps=2"]),
    "imagebind-unclip": (768, ["steps=2"]),
    "wav2clip-vqgan": (512, ["steps=2"]),
}


def _timed(args: list[str]) -> tuple[float, float]:
    """Run `python -m audiobench ARGS`; (wall seconds, peak resident GiB of that process)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, timeout=1800
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    return seconds, peak_kib / 2**20


# runs the CLI and prints its own peak resident memory (KiB) as the last line
_MEASURED = (
    "import resource, sys\n"
    "from audiobench.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "finally:\n"
    "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)\n"
)


def test_every_method_runs_and_evaluates_at_paper_scale(tmp_path):
    data, runs = tmp_path / "demo", tmp_path / "runs"
    write_demo_dataset(data)
    rows = []
    for method, (resolution, options) in METHODS.items():
        settings = [f"--set={option}" for option in options]
        args = [
            "run", "--method", method, "--data", str(data), "--out", str(runs),
            "--profile", "paper-random", "--limit", "2", *settings,
        ]  # fmt: skip
        rows.append((f"run {method}", *_timed(args)))
        run_dir = runs / f"{method}-test-first2-paper-random-seed0"
        images = sorted((run_dir / "images").glob("*.png"))
        assert len(images) == 2
        for image in images:
            with Image.open(image) as opened:
                assert opened.size == (resolution, resolution), (method, opened.size)
    run_dir = runs / "audiotoken-test-first2-paper-random-seed0"
    args = ["evaluate", str(run_dir), "--profile", "paper-random", "--set-resamples", "10"]
    rows.append(("evaluate audiotoken", *_timed(args)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["profile"] == "paper-random" and metrics["n_evaluated"] == 2
    assert set(metrics["metrics"]) == {"ais", "iis", "aic", "fid"}
    roles = {model["role"]: model["source"] for model in metrics["models"]}
    assert set(roles) == {"wav2clip", "clip_b32", "clip_l14", "classifier", "inception"}
    args = [
        "evaluate", str(run_dir), "--profile", "paper-random", "--set-resamples", "10",
        "--metrics", "kid,cmmd,ais-ib", "--replace",
    ]  # fmt: skip
    rows.append(("evaluate kid,cmmd,ais-ib", *_timed(args)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"kid", "cmmd", "ais-ib"}
    roles = {model["role"] for model in metrics["models"]}
    assert roles == {"inception", "clip_l14_336", "imagebind_vision", "imagebind_audio"}
    total = sum(seconds for _, seconds, _ in rows)
    print("\npaper-scale smoke test (paper-random, --limit 2, steps=2):")
    for name, seconds, peak in rows:
        print(f"  {name:<28} {seconds:7.1f} s  peak {peak:5.2f} GiB")
    print(f"  {'total':<28} {total:7.1f} s")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"  largest process: {children:.2f} GiB")
