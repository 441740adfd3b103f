"""What a run is made of, checked: planted features, a dataset edited after the run, weights
changed between sessions, and the weights of roles that method plugins register (issue 17,
items 2, 4 and 13)."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from audiobench.data import INDEX_FILE, load_index
from audiobench.errors import AudiobenchError
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models import zoo
from audiobench.runner import RunSettings, execute
from audiobench.store import file_sha256
from audiobench.verify import verify


@pytest.fixture
def dataset(demo_dir, tmp_path):
    """A private copy of the demo dataset, free to edit."""
    copy = tmp_path / "data"
    shutil.copytree(demo_dir, copy)
    return copy


def _run(dataset, out, method="reference", **options):
    settings = RunSettings(
        method=method, data_dir=dataset, out=out, profile="tiny", batch_size=4, options=options
    )
    return execute(settings).run_dir


def _drift(run_dir) -> dict[str, str]:
    return {f.subject: f.message for f in verify(run_dir) if f.kind == "drift"}


def test_planted_features_are_never_read_and_verify_reports_them(dataset, tmp_path):
    run = _run(dataset, tmp_path / "runs")
    honest = evaluate(EvaluateSettings(run, metrics=("ais",)))["metrics"]["ais"]["value"]
    assert 0 < honest < 100
    # identical embeddings for every generated image and audio window: planted, AIS would be
    # exactly chance (50) or, with the audio's own vector, 100
    table = pd.read_parquet(run / "samples.parquet")
    for name in evaluate(EvaluateSettings(run, metrics=("ais",)))["feature_caches"]:
        folder = run / "features" / name
        folder.mkdir(parents=True)
        keys = np.array(list(table.image_sha256))
        buffer = io.BytesIO()
        np.savez(buffer, keys=keys, values=np.ones((len(keys), 512), np.float32))
        (folder / "planted.npz").write_bytes(buffer.getvalue())
    again = evaluate(EvaluateSettings(run, metrics=("ais",), replace=True))
    assert again["metrics"]["ais"]["value"] == honest
    assert "features" in _drift(run)


def test_evaluate_refuses_a_dataset_changed_since_the_run(dataset, tmp_path, cli, capsys):
    run = _run(dataset, tmp_path / "runs")
    capsys.readouterr()  # the run's progress bar
    index = pd.read_parquet(dataset / INDEX_FILE)
    index.loc[0, "label"] = "a different label"
    index.to_parquet(dataset / INDEX_FILE)
    before = sorted(p.name for p in run.iterdir())
    code, _, err = cli("evaluate", run, "--metrics", "ais")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "changed since the run" in err and "index" in err and "--allow-dataset-change" in err
    assert sorted(p.name for p in run.iterdir()) == before  # no metrics.json written
    assert "dataset" in _drift(run)

    code, out, _ = cli("evaluate", run, "--metrics", "ais", "--allow-dataset-change")
    assert code == 0 and "dataset changed since the run" in out
    recorded = json.loads((run / "metrics.json").read_text())["dataset"]
    assert recorded["changed_since_run"] == ["dataset_sha256"]
    assert recorded["split"] == "test" and len(recorded["dataset_sha256"]) == 64
    notes = {f.subject: f.message for f in verify(run) if f.kind == "note"}
    assert "--allow-dataset-change" in notes["dataset"]


def test_a_swapped_audio_file_or_frame_is_a_changed_dataset(dataset, tmp_path):
    run = _run(dataset, tmp_path / "runs")
    first, second = load_index(dataset, "test")[:2]
    audio, rate = soundfile.read(second.audio_path, dtype="float32")
    soundfile.write(first.audio_path, audio, rate)  # same length, same format, other clip
    with pytest.raises(AudiobenchError, match="audio or frame files"):
        evaluate(EvaluateSettings(run, metrics=("ais",)))
    assert "audio or frame files" in _drift(run)["dataset"]
    shutil.copy(second.frame_path, first.frame_path)
    with pytest.raises(AudiobenchError, match="audio or frame files"):
        evaluate(EvaluateSettings(run, metrics=("iis",)))


def test_a_removed_sample_is_a_changed_dataset(dataset, tmp_path):
    run = _run(dataset, tmp_path / "runs")
    index = pd.read_parquet(dataset / INDEX_FILE)
    index.iloc[1:].to_parquet(dataset / INDEX_FILE)
    with pytest.raises(AudiobenchError, match="index"):
        evaluate(EvaluateSettings(run, metrics=("ais",)))


def test_an_untouched_dataset_verifies_and_is_recorded(dataset, tmp_path):
    run = _run(dataset, tmp_path / "runs")
    evaluate(EvaluateSettings(run, metrics=("ais",)))
    record = json.loads((run / "run.json").read_text())
    recorded = json.loads((run / "metrics.json").read_text())["dataset"]
    assert recorded["inputs_sha256"] == record["inputs_sha256"]
    assert (
        recorded["dataset_sha256"] == record["dataset_sha256"] == file_sha256(dataset / INDEX_FILE)
    )
    assert recorded["changed_since_run"] == [] and _drift(run) == {}


def test_a_resume_with_a_swapped_audio_file_is_refused(dataset, tmp_path):
    out = tmp_path / "runs"
    _run(dataset, out)
    first, second = load_index(dataset, "test")[:2]
    shutil.copy(second.audio_path, first.audio_path)
    with pytest.raises(AudiobenchError, match=f"of 1 finished samples changed.*{first.id}"):
        _run(dataset, out)


def test_a_resume_with_other_weights_is_refused(dataset, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    run = _run(dataset, out, "sd-text", steps="1")
    assert set(json.loads((run / "run.json").read_text())["weights"]) == {"sd"}
    role = zoo.get_role("sd")

    def perturbed(options):
        pipeline = role.build_tiny(options)
        with torch.no_grad():
            next(pipeline.unet.parameters()).add_(1e-3)
        return pipeline

    monkeypatch.setitem(zoo._ROLES, "sd", dataclasses.replace(role, build_tiny=perturbed))
    with pytest.raises(AudiobenchError, match="weights"):
        _run(dataset, out, "sd-text", steps="1")


def test_verify_checks_the_weights_of_roles_that_plugins_register(dataset, tmp_path):
    """In a fresh process nothing has imported the method: verify must import it to know its
    roles (VQGAN here), rather than skip them and still say the weights match."""
    run = _run(dataset, tmp_path / "runs", "wav2clip-vqgan", steps="1", size="32", cutn="2")
    roles = {model["role"] for model in json.loads((run / "run.json").read_text())["models"]}
    assert "vqgan" in roles
    result = subprocess.run(
        [sys.executable, "-m", "audiobench", "verify", str(run), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    findings = json.loads(result.stdout)
    assert not [f for f in findings if f["subject"] in roles], findings
