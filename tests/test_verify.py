"""`audiobench verify`: every kind of drift between a run's records and its files is found."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.runner import RunSettings, execute
from audiobench.verify import verify


@pytest.fixture(scope="module")
def evaluated_run(demo_dir, tmp_path_factory):
    settings = RunSettings(
        method="sd-text",
        data_dir=demo_dir,
        out=tmp_path_factory.mktemp("verify"),
        profile="tiny",
        batch_size=4,
        options={"steps": "2"},
    )
    run_dir = execute(settings).run_dir
    evaluate(EvaluateSettings(run_dir, metrics=("ais", "iis", "aic", "fid"), set_resamples=5))
    return run_dir


@pytest.fixture
def run_copy(evaluated_run, tmp_path):
    copy = tmp_path / evaluated_run.name
    shutil.copytree(evaluated_run, copy)
    return copy


def drifts(run_dir, **options) -> set[tuple[str, str]]:
    return {(f.subject, f.message) for f in verify(run_dir, **options) if f.kind == "drift"}


def test_an_untouched_run_verifies_clean(evaluated_run):
    assert verify(evaluated_run) == []
    record = json.loads((evaluated_run / "run.json").read_text())
    assert record["images"]["count"] == 12
    metrics = json.loads((evaluated_run / "metrics.json").read_text())
    assert metrics["images"] == record["images"]  # every image evaluated


def test_edited_added_and_deleted_images_are_named(run_copy):
    first, second = sorted((run_copy / "images").glob("*.png"))[:2]
    data = bytearray(first.read_bytes())
    data[-20] ^= 1
    first.write_bytes(bytes(data))
    second.unlink()
    (run_copy / "images" / "intruder.png").write_bytes(data)
    assert drifts(run_copy) == {
        (first.stem, "image changed since it was generated"),
        (second.stem, "image missing"),
        ("intruder.png", "image not recorded in samples.parquet"),
        ("metrics.json", "images changed after the evaluation"),
    }


def test_edited_records_are_found(run_copy):
    table = pd.read_parquet(run_copy / "samples.parquet")
    table.loc[0, "image_sha256"] = "0" * 64
    table.loc[1, "iis_win"] = 1 - table.loc[1, "iis_win"] + 0.25
    table.to_parquet(run_copy / "samples.parquet")
    found = drifts(run_copy)
    assert (table.loc[0, "id"], "image changed since it was generated") in found
    assert ("samples.parquet", "image records differ from run.json's digest") in found
    assert any(subject == "iis" and "samples.parquet's iis_win" in m for subject, m in found)
    assert not any(subject in ("ais", "aic") for subject, _ in found)


def test_recompute_finds_a_forged_value_and_confirms_the_others(run_copy):
    path = run_copy / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["metrics"]["fid"]["value"] += 1.0
    path.write_text(json.dumps(metrics))
    assert drifts(run_copy) == set()  # FID has no per-sample column to check it against
    found = drifts(run_copy, recompute=True)
    assert [subject for subject, _ in found] == ["fid"]
    assert "metrics.json says" in next(iter(found))[1]


def test_changed_weights_are_drift(run_copy):
    path = run_copy / "run.json"
    record = json.loads(path.read_text())
    record["models"][0]["sha256"] = "f" * 64
    path.write_text(json.dumps(record))
    role = record["models"][0]["role"]
    assert drifts(run_copy) == {(role, "run.json: weights changed since the run")}


def test_cli_exit_codes(evaluated_run, run_copy, cli):
    code, out, _ = cli("verify", evaluated_run)
    assert code == 0 and "consistent" in out
    next((run_copy / "images").glob("*.png")).unlink()
    code, out, _ = cli("verify", run_copy, "--json")
    assert code == 1
    assert {"kind": "drift", "subject": "metrics.json"}.items() <= json.loads(out)[-1].items()
    code, _, err = cli("verify", run_copy / "images")
    assert code == 2 and "not a run directory" in err
