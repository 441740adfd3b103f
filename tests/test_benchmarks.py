"""`python -m audiobench.benchmarks` end to end at --quick sizes: entry point, JSON and checks.

Speed is never asserted (the benchmarks measure it); what is tested is that the stages run,
report every ratio as a positive number and that both sides of each comparison agree.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import HANG_SECONDS, REPO

EXPECTED_RATIOS = {
    "data": {
        "1 worker / reference speed",
        "2 workers / reference speed",
        "2 workers / 1 worker speed",
    },
    "fid": {"audiobench fid / torch-fidelity time"},
}


def test_quick_data_and_fid_stages_write_every_ratio_and_pass_their_checks(tmp_path):
    out = tmp_path / "x.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "audiobench.benchmarks",
            *EXPECTED_RATIOS,
            "--quick",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=HANG_SECONDS,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert {"date", "machine", "versions", "total_seconds"} <= set(payload)
    assert payload["versions"]["torch-fidelity"]
    assert set(payload["stages"]) == set(EXPECTED_RATIOS)
    for stage, names in EXPECTED_RATIOS.items():
        result = payload["stages"][stage]
        assert result["check"] is True, (stage, result)
        assert set(result["ratios"]) == names
        assert all(math.isfinite(v) and v > 0 for v in result["ratios"].values())
        assert all(row["seconds"] > 0 for row in result["measurements"])
    assert "== data ==" in finished.stdout and "== fid ==" in finished.stdout


def test_unknown_stage_is_refused_with_the_list():
    finished = subprocess.run(
        [sys.executable, "-m", "audiobench.benchmarks", "speed"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert finished.returncode == 2
    assert "unknown stage speed; choose from data, generation" in finished.stderr
