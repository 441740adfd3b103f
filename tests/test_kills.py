"""Killed at random moments and restarted, run/evaluate/train/prepare finish as if never killed.

Each command gets at least 20 seeded SIGKILLs (see tests/kill_harness.py); two harnesses run at a
time, one per core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.kill
KILLS = 20
COMMANDS = ("run", "evaluate", "train", "prepare")


def harness(command: str, work) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.kill_harness", command, str(work / command)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("kills")
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = pool.map(lambda command: harness(command, work), COMMANDS)
        return dict(zip(COMMANDS, found, strict=True))


@pytest.mark.parametrize("command", COMMANDS)
def test_restarts_after_kills_equal_an_uninterrupted_run(reports, command):
    report = reports[command]
    assert report["errors"] == []
    assert report["kills"] >= KILLS
