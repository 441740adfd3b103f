"""What `audiobench train` refuses or repairs: a folder in use, a resume under other settings or
below its checkpoint, a damaged checkpoint, and weight files whose pickles ask for code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from audiobench.methods.audiotoken.training import (
    EMBEDDER_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    TrainingLog,
)
from PIL import Image

from audiobench.data import load_index
from audiobench.store import exclusive_lock
from tests.test_audiotoken import TRAIN_OPTIONS, train_settings
from tests.test_paper_scale import _Payload

NEWEST, PREVIOUS = "step-00000006", "step-00000003"  # train_settings: 6 steps, one every 3


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory) -> Path:
    """A finished 6-step training with checkpoints at steps 3 and 6 (copied by each test)."""
    from audiobench.trainer import train

    return train(train_settings(demo_dir, tmp_path_factory.mktemp("trained") / "ckpt"))


def copy_of(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "ckpt"))


def train_cli(
    cli, data: Path, out: Path, *extra: str, resume: bool = False, **training: str
) -> tuple[int, str, str]:
    """`audiobench train` with train_settings' values: `extra` options (name, value) and
    `training` options (--set KEY=VALUE) override them."""
    options = {"--method": "audiotoken", "--profile": "tiny"}
    options.update(zip(extra[::2], extra[1::2], strict=True))
    flags = [item for pair in options.items() for item in pair]
    values = {**{key: str(value) for key, value in TRAIN_OPTIONS.items()}, **training}
    sets = [item for key, value in values.items() for item in ("--set", f"{key}={value}")]
    return cli(
        "train", "--data", data, "--out", out, *flags, *sets, *(["--resume"] if resume else [])
    )


def resume_cli(cli, data: Path, out: Path, *extra: str, **training: str) -> tuple[int, str, str]:
    return train_cli(cli, data, out, *extra, resume=True, **training)


def the_error(err: str) -> str:
    """The one error line of a refused command (libraries may log warnings besides)."""
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def malicious_pickle(path: Path, marker: Path) -> None:
    """A weights file whose unpickling would create `marker`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(1), "callbacks": _Payload(marker)}, path)


def test_a_folder_in_use_is_refused(demo_dir, tmp_path, cli):
    out = tmp_path / "ckpt"
    out.mkdir()
    with exclusive_lock(out):  # what a first `train` (or `run`) into the folder holds
        code, _, err = train_cli(cli, demo_dir, out)
    assert code == 2
    assert f"in use by another audiobench process (pid {os.getpid()})" in err
    assert err.count("\n") == 1
    assert [path.name for path in out.iterdir()] == [".lock"]  # no step ran, nothing written


def test_train_json_records_the_settings_before_the_first_step(demo_dir, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    def killed(*args) -> None:
        raise Killed

    from audiobench.trainer import train

    monkeypatch.setattr(TrainingLog, "record", killed)
    with pytest.raises(Killed):
        train(train_settings(demo_dir, tmp_path / "ckpt", seed=3))
    record = json.loads((tmp_path / "ckpt" / "train.json").read_text())
    assert record["identity"]["seed"] == 3 and record["identity"]["config"]["batch_size"] == 2
    assert "steps" not in record["identity"]["config"]  # a resume may train longer
    assert "config" not in record  # not finished


def test_a_resume_under_other_settings_names_each_change(trained, demo_dir, tmp_path, cli):
    out = copy_of(trained, tmp_path)
    other_data = Path(shutil.copytree(demo_dir, tmp_path / "other-data"))
    index = pd.read_parquet(other_data / "index.parquet")
    index.iloc[1:].to_parquet(other_data / "index.parquet", index=False)  # one clip less
    record = out / "train.json"
    before = record.read_bytes()
    code, _, err = resume_cli(
        cli,
        other_data,
        out,
        *("--method", "audiotoken-cl", "--seed", "1", "--mixed-precision", "bf16"),
        *("--split", "test"),
        lr="0.002",
        batch_size="4",
        grad_accum="2",
    )
    assert code == 2
    line = the_error(err)
    for change in (
        "--method audiotoken -> audiotoken-cl",
        "--seed 0 -> 1",
        "option lr 0.001 -> 0.002",
        "option batch_size 2 -> 4",
        "option grad_accum 1 -> 2",
        "--mixed-precision no -> bf16",
        "--split train -> test",
        "dataset index sha256",
    ):
        assert change in line
    assert record.read_bytes() == before  # the record never claims the new settings
    assert not (out / "checkpoints" / "step-00000009").exists()


def test_a_resume_with_other_models_is_refused(trained, demo_dir, tmp_path, cli):
    """The profile and every role's weights are part of what was trained (here the record is
    edited: the tiny profile's weights cannot change)."""
    out = copy_of(trained, tmp_path)
    record = json.loads((out / "train.json").read_text())
    sd_weights = record["identity"]["weights"]["sd"]
    record["identity"]["profile"] = "paper-random"
    record["identity"]["weights"]["sd"] = "0" * 64
    (out / "train.json").write_text(json.dumps(record))
    code, _, err = resume_cli(cli, demo_dir, out)
    assert code == 2
    line = the_error(err)
    assert "--profile paper-random -> tiny" in line
    assert f"sd weights sha256 000000000000 -> {sd_weights[:12]}" in line
    assert "beats" not in line and "--seed" not in line


def test_steps_checkpoints_and_device_may_change_on_resume(trained, demo_dir, tmp_path, cli):
    out = copy_of(trained, tmp_path)
    identity = json.loads((out / "train.json").read_text())["identity"]
    moved = Path(shutil.copytree(demo_dir, tmp_path / "moved"))  # the same index elsewhere
    code, _, err = resume_cli(cli, moved, out, "--device", "cpu", steps="8", checkpoint_every="4")
    assert code == 0, err
    record = json.loads((out / "train.json").read_text())
    assert record["identity"] == identity and record["config"]["steps"] == 8
    assert [session["steps"] for session in record["sessions"]] == [6, 8]
    assert record["sessions"][-1]["checkpoint_every"] == 4
    assert record["sessions"][-1]["dataset"] == str(moved.resolve())
    assert list(pd.read_csv(out / "loss.csv").step) == list(range(1, 9))


def test_steps_below_the_checkpoint_are_refused(trained, demo_dir, tmp_path, cli):
    out = copy_of(trained, tmp_path)
    log = (out / "loss.csv").read_bytes()
    code, _, err = resume_cli(cli, demo_dir, out, steps="5")
    assert code == 2
    line = the_error(err)
    expected = f"checkpoint {out / 'checkpoints' / NEWEST} is at step 6; option steps 5 is below it"
    assert expected in line
    assert (out / "loss.csv").read_bytes() == log


def _cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _change_a_byte(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # still a valid zip and pickle: only the hash tells
    path.write_bytes(bytes(data))
    return path


DAMAGES = {
    "embedder cut": lambda folder: _cut(folder / EMBEDDER_FILE),
    "optimizer byte changed": lambda folder: _change_a_byte(folder / OPTIMIZER_FILE),
    "state.json cut": lambda folder: _cut(folder / STATE_FILE),
    "embedder missing": lambda folder: (folder / EMBEDDER_FILE).unlink() or folder / EMBEDDER_FILE,
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(
    trained, demo_dir, tmp_path, cli, damage
):
    out = copy_of(trained, tmp_path)
    damaged = DAMAGES[damage](out / "checkpoints" / NEWEST)
    code, _, err = resume_cli(cli, demo_dir, out)
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert str(damaged) in warning and f"resuming from {PREVIOUS}" in warning
    log, original = (pd.read_csv(folder / "loss.csv") for folder in (out, trained))
    assert list(log.step) == list(range(1, 7))  # steps 4-6 once, trained again
    pd.testing.assert_frame_equal(log.iloc[:3], original.iloc[:3])
    state = json.loads((out / "checkpoints" / NEWEST / STATE_FILE).read_text())
    assert state["step"] == 6
    weights, expected = (torch.load(folder / EMBEDDER_FILE) for folder in (out, trained))
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6, msg=name)


def test_no_readable_checkpoint_is_one_error(trained, demo_dir, tmp_path, cli):
    out = copy_of(trained, tmp_path)
    damaged = [_cut(out / "checkpoints" / step / EMBEDDER_FILE) for step in (NEWEST, PREVIOUS)]
    code, _, err = resume_cli(cli, demo_dir, out)
    assert code == 2
    line = the_error(err)
    assert "no checkpoint to resume from is readable" in line
    assert all(str(path) in line for path in damaged)


@pytest.mark.parametrize("name", [EMBEDDER_FILE, OPTIMIZER_FILE])
def test_a_malicious_training_checkpoint_is_refused(trained, demo_dir, tmp_path, cli, name):
    """Whoever can write the file can write state.json too: the hash matches, the pickle is
    refused, and the resume stops rather than passing over it."""
    out = copy_of(trained, tmp_path)
    marker = tmp_path / "ran"
    folder = out / "checkpoints" / NEWEST
    malicious_pickle(folder / name, marker)
    state = json.loads((folder / STATE_FILE).read_text())
    state["sha256"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / STATE_FILE).write_text(json.dumps(state))
    code, _, err = resume_cli(cli, demo_dir, out)
    assert code == 2
    line = the_error(err)
    assert f"checkpoint {folder / name} was refused" in line
    assert not marker.exists()
    assert folder.is_dir()


def _images(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for index, name in enumerate(names):
        Image.new("RGB", (32, 32), (40 * index, 0, 0)).save(folder / f"{name}.png")
    return folder


def test_malicious_clip_weights_are_refused(tmp_path, cli):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights"
    path = weights / "clip_l14_336" / "open_clip_pytorch_model.bin"
    malicious_pickle(path, marker)
    first, second = (_images(tmp_path / name, ["a", "b", "c"]) for name in ("A", "B"))
    code, _, err = cli(
        "distance", first, second, "--metrics", "cmmd", "--profile", "paper",
        "--weights-dir", weights, "--device", "cpu",
    )  # fmt: skip
    assert code == 2
    assert f"checkpoint {path} was refused" in the_error(err)
    assert not marker.exists()


def test_malicious_classifier_weights_are_refused(demo_dir, tmp_path, cli):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights"
    path = weights / "classifier" / "pytorch_model.bin"
    malicious_pickle(path, marker)
    # AIC's text side must be present to start; the classifier is loaded first
    (weights / "clip_l14").mkdir()
    (weights / "clip_l14" / "open_clip_model.safetensors").write_bytes(b"never loaded")
    ids = [sample.id for sample in load_index(demo_dir, "test")[:3]]
    code, _, err = cli(
        "evaluate", "--images", _images(tmp_path / "images", ids), "--data", demo_dir,
        "--out", tmp_path / "runs", "--metrics", "aic", "--profile", "paper",
        "--weights-dir", weights, "--device", "cpu",
    )  # fmt: skip
    assert code == 2
    assert f"checkpoint {path} was refused" in the_error(err)
    assert not marker.exists()
