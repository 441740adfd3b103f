"""`audiobench run`: the run directory, determinism, resume after a kill, per-sample errors."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audiobench.data import load_index, write_index
from audiobench.runner import RunSettings, execute, sample_seed
from audiobench.store import RunDirectory, exclusive_lock, remove_stale_temporaries
from tests.conftest import HANG_SECONDS, dead_pid

STEPS = "10"  # fewer denoising steps keep the tiny runs fast; the code path is the same


def settings(demo_dir, out, method="sd-text", **changes) -> RunSettings:
    options = {"steps": STEPS} if method == "sd-text" else {}
    values = dict(
        method=method, data_dir=demo_dir, out=out, profile="tiny", batch_size=2, options=options
    )
    return RunSettings(**{**values, **changes})


def tiny_run(cli, method, data, out, *extra):
    """`audiobench run` on the tiny profile through the in-process CLI."""
    return cli("run", "--method", method, "--data", data, "--profile", "tiny", "--out", out, *extra)


def image_digests(run_dir):
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((run_dir / "images").iterdir())
    }


@pytest.fixture(scope="module")
def sd_run(demo_dir, tmp_path_factory):
    """One uninterrupted tiny sd-text run over the demo test split."""
    return execute(settings(demo_dir, tmp_path_factory.mktemp("runs")))


def test_run_directory_contents(sd_run, demo_dir):
    run = RunDirectory(sd_run.run_dir)
    assert sd_run.run_dir.name == "sd-text-test-tiny-seed0"
    assert (sd_run.total, sd_run.ok, sd_run.failed, sd_run.generated) == (12, 12, 0, 12)
    record = run.read_run()
    assert record["schema_version"] == 1
    assert record["method"] == "sd-text" and record["profile"] == "tiny"
    assert record["seed"] == 0 and record["split"] == "test" and record["batch_size"] == 2
    assert record["method_config"] == {
        "prompt": "A photo of a {label}",
        "guidance_scale": 7.5,
        "steps": 10,
    }
    assert len(record["dataset_sha256"]) == 64
    [model] = record["models"]
    assert model["role"] == "sd" and len(model["sha256"]) == 64
    for package in ("torch", "diffusers", "transformers", "open_clip_torch", "torch-fidelity"):
        assert record["versions"][package]
    assert "git" in record and record["sessions"][0]["hardware"]

    samples = load_index(demo_dir, "test")
    table = run.read_samples()
    assert table.id.tolist() == [sample.id for sample in samples]
    assert (table.status == "ok").all() and table.error.isna().all()
    assert table.seed.tolist() == [sample_seed(0, sample.id) for sample in samples]
    for row in table.itertuples():
        with Image.open(sd_run.run_dir / row.image) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
    assert not list(sd_run.run_dir.rglob(".*.tmp-*"))


def test_same_seed_same_bytes_other_seed_other_images(sd_run, demo_dir, tmp_path):
    again = execute(settings(demo_dir, tmp_path))
    assert image_digests(again.run_dir) == image_digests(sd_run.run_dir)
    other = execute(settings(demo_dir, tmp_path, seed=1))
    assert other.run_dir.name == "sd-text-test-tiny-seed1"
    shared = set(image_digests(other.run_dir).values()) & set(
        image_digests(sd_run.run_dir).values()
    )
    assert not shared


def test_rerun_of_a_finished_run_generates_nothing(sd_run, demo_dir):
    before = image_digests(sd_run.run_dir)
    summary = execute(settings(demo_dir, sd_run.run_dir.parent))
    assert summary.generated == 0 and summary.ok == 12
    assert image_digests(sd_run.run_dir) == before


def test_resume_after_sigkill_gives_the_same_bytes(sd_run, demo_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "audiobench",
        "run",
        "--method",
        "sd-text",
        "--data",
        str(demo_dir),
        "--out",
        str(tmp_path),
        "--profile",
        "tiny",
        "--batch-size",
        "2",
        "--set",
        f"steps={STEPS}",
    ]
    images = tmp_path / "sd-text-test-tiny-seed0" / "images"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hang = time.monotonic() + HANG_SECONDS  # catches a hang only, never a slow machine
    while len(list(images.glob("*.png"))) < 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < hang, "no 3 images after an hour: the run hangs"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(images.glob("*.png")))
    assert 3 <= finished_before < 12

    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # An image written just before the kill but not yet in samples.parquet is made again (same
    # bytes), so at most one batch (2 images) more than the missing ones is regenerated.
    new = int(re.search(r"\((\d+) new\)", result.stdout).group(1))
    assert 12 - finished_before <= new <= 12 - finished_before + 2
    assert image_digests(images.parent) == image_digests(sd_run.run_dir)
    table = pd.read_parquet(images.parent / "samples.parquet")
    assert len(table) == 12 and table.id.is_unique and (table.status == "ok").all()
    assert not list(images.parent.rglob(".*.tmp-*"))


def test_half_written_batch_is_regenerated_whole(sd_run, demo_dir, tmp_path):
    """A kill between the two image writes of one batch: the batch is redone identically."""
    copy = tmp_path / sd_run.run_dir.name
    shutil.copytree(sd_run.run_dir, copy)
    second_of_batch = load_index(demo_dir, "test")[5]
    (copy / "images" / f"{second_of_batch.id}.png").unlink()
    dead = f"{socket.gethostname()}-{dead_pid()}"
    (copy / "images" / f".{second_of_batch.id}.png.tmp-{dead}").write_bytes(b"partial")
    summary = execute(settings(demo_dir, tmp_path))
    assert summary.generated == 1
    assert image_digests(copy) == image_digests(sd_run.run_dir)
    assert not list(copy.rglob(".*.tmp-*"))


def test_only_temporaries_of_dead_local_processes_are_removed(tmp_path):
    host = socket.gethostname()
    names = {
        f".a.npz.tmp-{host}-{dead_pid()}": False,  # killed writer: removed
        f".b.npz.tmp-{host}-{os.getpid()}": True,  # a live writer's file: kept
        f".c.npz.tmp-another-host-{dead_pid()}": True,  # maybe live elsewhere: kept
        "d.npz": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    remove_stale_temporaries(tmp_path)
    assert {name: (tmp_path / name).exists() for name in names} == names


def test_different_settings_in_the_same_directory_are_refused(sd_run, demo_dir, cli):
    code, _, err = tiny_run(
        cli, "sd-text", demo_dir, sd_run.run_dir.parent, "--batch-size", "3", "--set", "steps=10"
    )
    assert code == 2 and "different batch_size" in err


def test_another_batch_size_gives_the_same_images_up_to_float_rounding(sd_run, demo_dir, tmp_path):
    """The README's claim: batch 2 and batch 1 give the same image per sample, a few values
    at most one grey level apart (batched kernels sum in another order)."""
    single = execute(settings(demo_dir, tmp_path, batch_size=1))
    largest = 0
    for name in image_digests(sd_run.run_dir):
        with (
            Image.open(sd_run.run_dir / "images" / name) as batched,
            Image.open(single.run_dir / "images" / name) as alone,
        ):
            difference = np.abs(np.asarray(batched, int) - np.asarray(alone, int))
        largest = max(largest, int(difference.max()))
    assert largest <= 1


def test_reference_run_reproduces_the_frames(demo_dir, tmp_path):
    summary = execute(settings(demo_dir, tmp_path, method="reference"))
    assert summary.ok == 12
    for sample in load_index(demo_dir, "test"):
        with (
            Image.open(sample.frame_path) as frame,
            Image.open(summary.run_dir / "images" / f"{sample.id}.png") as copy,
        ):
            np.testing.assert_array_equal(np.asarray(frame), np.asarray(copy))


def test_bad_sample_is_recorded_and_the_run_goes_on(demo_dir, tmp_path, cli):
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    broken = load_index(data, "test")[3]
    broken.frame_path.write_bytes(b"not a png")
    code, out, _ = tiny_run(cli, "reference", data, tmp_path / "runs")
    assert code == 0 and "11/12 images" in out and "1 failed" in out
    run_dir = tmp_path / "runs" / "reference-test-tiny-seed0"
    table = pd.read_parquet(run_dir / "samples.parquet").set_index("id")
    assert table.loc[broken.id, "status"] == "failed"
    assert str(broken.frame_path) in table.loc[broken.id, "error"]
    assert "unreadable image" in table.loc[broken.id, "error"]
    assert (table.drop(broken.id).status == "ok").all()

    shutil.copy(demo_dir / "frames" / broken.frame_path.name, broken.frame_path)  # repaired
    code, out, _ = tiny_run(cli, "reference", data, tmp_path / "runs")
    assert code == 0 and "12/12 images (1 new), 0 failed" in out


def test_second_process_on_the_same_run_directory_is_refused(demo_dir, tmp_path, cli):
    run_dir = tmp_path / "reference-test-tiny-seed0"
    run_dir.mkdir()
    with exclusive_lock(run_dir):
        code, _, err = tiny_run(cli, "reference", demo_dir, tmp_path)
    assert code == 2 and "in use by another audiobench process" in err
    code, _, _ = tiny_run(cli, "reference", demo_dir, tmp_path)
    assert code == 0  # the lock went with its holder


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "{tmp}/missing"], "data directory {tmp}/missing does not exist"),
        (["--data", "{tmp}"], "has no index.parquet"),
        (["--data", "{demo}", "--split", "val"], "no samples in split 'val'"),
        (["--data", "{tmp}/empty"], "{tmp}/empty/index.parquet has no samples"),
        (["--data", "{demo}", "--out", "{tmp}/file/runs"], "cannot create directory"),
        (["--data", "{demo}", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--data", "{demo}", "--set", "steps"], "--set takes KEY=VALUE"),
        (["--data", "{demo}", "--checkpoint", "{tmp}/none.bin"], "checkpoint {tmp}/none.bin"),
    ],
    ids=[
        "missing-data",
        "no-index",
        "empty-split",
        "empty-index",
        "unwritable-out",
        "batch-size",
        "bad-set",
        "missing-checkpoint",
    ],
)
def test_errors_are_one_line_with_exit_code_2(cli, demo_dir, tmp_path, arguments, message):
    (tmp_path / "file").write_text("a file, not a directory")
    write_index(tmp_path / "empty", [])
    fill = {"tmp": tmp_path, "demo": demo_dir}
    arguments = [argument.format(**fill) for argument in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "runs")]
    code, _, err = cli("run", "--method", "sd-text", "--profile", "tiny", *arguments)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message.format(**fill) in err
