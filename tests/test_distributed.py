"""Two processes under `accelerate launch` (gloo, CPU) give what one process gives."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch
from audiobench.methods.audiotoken.embedder import AudioTokenEmbedder
from audiobench.methods.audiotoken.training import EMBEDDER_FILE

from audiobench.distributed import SINGLE, Processes
from tests.conftest import HANG_SECONDS

# CPU kernels round differently with different thread counts; a launcher gives each process one
# thread, so the one-process baselines run with one thread too.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(processes: int, *args) -> subprocess.CompletedProcess:
    """`accelerate launch ... -m audiobench ARGS` (or plain python for one process)."""
    if processes == 1:
        command = [sys.executable, "-m", "audiobench"]
    else:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "audiobench",
        ]  # fmt: skip
    result = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_THREAD},
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    """sd-text on the demo test split, generated and evaluated by one and by two processes."""
    root = tmp_path_factory.mktemp("distributed")
    made = {}
    for count in (1, 2):
        out = root / f"p{count}"
        common = ("--data", demo_dir, "--profile", "tiny", "--device", "cpu")
        result = launch(
            count, "run", "--method", "sd-text", *common, "--out", out,
            "--batch-size", "4", "--set", "steps=2",
        )  # fmt: skip
        run_dir = out / "sd-text-test-tiny-seed0"
        evaluated = launch(count, "evaluate", run_dir, "--device", "cpu", "--batch-size", "4")
        made[count] = (run_dir, result.stdout, evaluated.stdout)
    return made


def test_two_processes_make_the_same_images_and_records(runs):
    (one, _, _), (two, printed, _) = runs[1], runs[2]
    assert digests(two / "images") == digests(one / "images")
    assert len(digests(one / "images")) == 12
    columns = ["id", "label", "status", "error", "image", "seed"]
    first, second = (
        pd.read_parquet(one / "samples.parquet"),
        pd.read_parquet(two / "samples.parquet"),
    )
    pd.testing.assert_frame_equal(first[columns], second[columns])
    assert not list(two.glob("samples.part-*"))  # merged into samples.parquet
    assert printed.count("12/12 images") == 1  # only the main process reports
    assert json.loads((two / "run.json").read_text())["sessions"][-1]["processes"] == 2


def test_two_processes_give_the_same_metrics(runs):
    (one, _, _), (two, _, printed) = runs[1], runs[2]
    first = json.loads((one / "metrics.json").read_text())["metrics"]
    second = json.loads((two / "metrics.json").read_text())["metrics"]
    assert first.keys() == {"ais", "iis", "aic", "fid"}
    assert {k: v["value"] for k, v in second.items()} == {k: v["value"] for k, v in first.items()}
    assert {k: v["ci95"] for k, v in second.items()} == {k: v["ci95"] for k, v in first.items()}
    per_sample = ["ais_win", "iis_win", "aic_prediction", "aic_agree"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(one / "samples.parquet")[per_sample],
        pd.read_parquet(two / "samples.parquet")[per_sample],
    )
    assert printed.count("AIS (up)") == 1


def test_two_processes_train_one_embedder(demo_dir, tmp_path):
    common = ("train", "--method", "audiotoken", "--data", demo_dir, "--profile", "tiny")
    options = ("--device", "cpu", *("--set", "steps=4", "--set", "batch_size=4"))
    options += ("--set", "checkpoint_every=2")
    launch(1, *common, *options, "--out", tmp_path / "one")
    launch(2, *common, *options, "--out", tmp_path / "two")
    one, two = (pd.read_csv(tmp_path / name / "loss.csv") for name in ("one", "two"))
    assert list(two.step) == [1, 2, 3, 4]
    # Same crops, latents, noise, timesteps and dropout masks: the same steps, up to rounding
    pd.testing.assert_frame_equal(two, one, rtol=1e-5)
    weights = [
        AudioTokenEmbedder.from_official_checkpoint(tmp_path / name / EMBEDDER_FILE).state_dict()
        for name in ("one", "two")
    ]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == [
        "step-00000002",
        "step-00000004",
    ]
    record = json.loads((tmp_path / "two" / "train.json").read_text())
    assert record["sessions"][-1]["processes"] == 2


def test_work_is_dealt_by_batch_index():
    team = [Processes(rank, 3) for rank in range(3)]
    owners = [[p.rank for p in team if p.owns(batch)] for batch in range(7)]
    assert owners == [[0], [1], [2], [0], [1], [2], [0]]
    assert all(SINGLE.owns(batch) for batch in range(7))
    assert SINGLE.gather("x") == ["x"] and SINGLE.from_main(5) == 5
