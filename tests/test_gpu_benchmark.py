"""`python -m audiobench.benchmarks.gpu` at smoke sizes on the CPU: rows, ratios, time guard.

The GPU numbers themselves need a GPU; what is tested here is that the one command a GPU session
runs gets through every section, writes every row and ratio and records its environment.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import HANG_SECONDS, REPO

ROWS = {
    "generation/fp32/single",
    "generation/fp16/single",
    "generation/fp16/batched",
    "generation/bf16/single",
    "generation/bf16/batched",
    "training/fp32",
    "training/fp16-autocast",
    "training/bf16-autocast",
    "training/fp16-recomputed",
    "evaluation/single",
    "evaluation/batched",
    "beats/single",
    "beats/batched",
}
HEADER = {"date", "gpu", "versions", "matmul_allow_tf32", "notes", "total_seconds", "rows"}


def run_gpu_benchmark(tmp_path, *arguments: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu.json"
    # the benchmark's own time guard would skip rows on a loaded machine: only the test of the
    # guard itself (whose --time-limit comes later and wins) sets a real one
    command = [
        *(sys.executable, "-m", "audiobench.benchmarks.gpu", "--device", "cpu", "--smoke"),
        *("--time-limit", str(HANG_SECONDS)),
    ]
    finished = subprocess.run(
        [*command, "--json", str(out), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=HANG_SECONDS,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished, json.loads(out.read_text())


def test_smoke_run_measures_every_row_and_ratio(tmp_path):
    finished, payload = run_gpu_benchmark(tmp_path)
    assert payload.keys() >= HEADER
    assert payload["versions"]["torch"] and payload["versions"]["diffusers"]
    assert payload["gpu"] is None and payload["smoke"] is True
    rows = {row["key"]: row for row in payload["rows"]}
    assert set(rows) == ROWS
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["items"] > 0 and row["seconds"] > 0 and row["items_per_second"] > 0
    assert rows["generation/fp16/batched"]["batch"] > 1
    assert all(math.isfinite(v) and v > 0 for v in payload["ratios"].values()), payload["ratios"]
    assert "scaled to 50" in finished.stdout
    assert "generation fp16 batched / batch 1:" in finished.stdout
    assert payload["matmul_allow_tf32"] is False  # speechbrain (BEATs) did not turn TF32 on
    assert {row["tf32_matmul"] for row in rows.values()} == {False}


def test_time_guard_records_every_row_as_skipped(tmp_path):
    _, payload = run_gpu_benchmark(tmp_path, "--time-limit", "0")
    statuses = {row["key"]: row["status"] for row in payload["rows"]}
    assert statuses == dict.fromkeys(ROWS, "skipped: time guard")
    assert all(value is None for value in payload["ratios"].values())


def test_generation_time_is_scaled_by_the_time_per_unet_call():
    from audiobench.benchmarks.gpu import extrapolate

    # 3 calls ending at t = 1, 2, 3 in a 4 s run: 1 s per call, 48 more calls for 51.
    assert extrapolate(4.0, [1.0, 2.0, 3.0], 51) == 52.0
