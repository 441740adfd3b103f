"""`audiobench evaluate` and `audiobench fid` end to end on tiny runs of the demo data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch_fidelity

from audiobench import features
from audiobench.data import load_index
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models import LoadOptions, ModelZoo
from audiobench.runner import RunSettings, execute

CPU = LoadOptions(torch.device("cpu"), torch.float32)


def make_run(demo_dir, out, method, **options):
    settings = RunSettings(
        method=method, data_dir=demo_dir, out=out, profile="tiny", batch_size=4, options=options
    )
    return execute(settings).run_dir


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {
        "sd-text": make_run(demo_dir, out, "sd-text", steps="2"),
        "reference": make_run(demo_dir, out, "reference"),
    }


@pytest.fixture(scope="module")
def sd_metrics(runs):
    return evaluate(EvaluateSettings(runs["sd-text"]))


def copy_run(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("metrics.json"))
    return copy


def test_metrics_json_has_every_metric_with_n_and_interval(runs, sd_metrics):
    on_disk = json.loads((runs["sd-text"] / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(sd_metrics))
    assert on_disk["schema_version"] == 2 and on_disk["profile"] == "tiny"
    assert on_disk["n_evaluated"] == 12 and on_disk["excluded"] == []
    for name in ("ais", "iis", "aic", "fid"):
        result = on_disk["metrics"][name]
        assert result["n"] == 12
        low, high = result["ci95"]
        assert low <= high and result["config"]
    for name in ("ais", "iis", "aic"):
        result = on_disk["metrics"][name]
        assert 0 <= result["value"] <= 100
        assert result["ci95"][0] <= result["value"] <= result["ci95"][1]
    assert on_disk["metrics"]["fid"]["higher_is_better"] is False
    assert {model["role"] for model in on_disk["models"]} == {
        "wav2clip",
        "clip_b32",
        "clip_l14",
        "classifier",
        "inception",
    }


def test_per_sample_values_are_in_the_sample_table(runs, sd_metrics):
    table = pd.read_parquet(runs["sd-text"] / "samples.parquet")
    assert table.ais_win.between(0, 1).all() and table.iis_win.between(0, 1).all()
    assert 100 * table.ais_win.mean() == pytest.approx(sd_metrics["metrics"]["ais"]["value"])
    assert 100 * table.aic_agree.mean() == pytest.approx(sd_metrics["metrics"]["aic"]["value"])
    assert table.aic_prediction.map(type).eq(str).all()


def test_reference_run_is_perfect_on_image_metrics(runs):
    """The real frames against themselves: every IIS comparison is won and FID is 0."""
    result = evaluate(EvaluateSettings(runs["reference"], metrics=("iis", "fid")))
    assert result["metrics"]["iis"]["value"] == 100.0
    assert result["metrics"]["fid"]["value"] == pytest.approx(0.0, abs=1e-3)


def test_second_evaluation_computes_nothing(runs, sd_metrics, monkeypatch):
    def refuse(model):
        raise AssertionError("a feature was computed again instead of read from the cache")

    monkeypatch.setattr(features, "COMPUTERS", dict.fromkeys(features.COMPUTERS, refuse))
    again = evaluate(EvaluateSettings(runs["sd-text"]))
    for name, result in sd_metrics["metrics"].items():
        assert again["metrics"][name]["value"] == result["value"]
        assert again["metrics"][name]["ci95"] == result["ci95"]


def test_corrupt_cache_shard_is_recomputed_not_trusted(runs, sd_metrics, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(tmp_path / "cache"))
    copy = copy_run(runs["sd-text"], tmp_path)
    first = evaluate(EvaluateSettings(copy, metrics=("ais",)))
    shards = list((tmp_path / "cache" / "features").rglob("*.npz"))
    assert shards
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[:40])  # truncated
    with pytest.warns(UserWarning, match="discarding corrupt feature cache"):
        again = evaluate(EvaluateSettings(copy, metrics=("ais",)))
    assert again["metrics"]["ais"] == first["metrics"]["ais"]
    assert first["metrics"]["ais"]["value"] == sd_metrics["metrics"]["ais"]["value"]


def test_missing_and_unreadable_images_are_excluded_and_counted(runs, tmp_path):
    copy = copy_run(runs["sd-text"], tmp_path)
    images = sorted((copy / "images").glob("*.png"))
    images[0].unlink()
    images[1].write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluate(EvaluateSettings(copy, metrics=("ais", "aic")))
    assert result["n_evaluated"] == 10 and result["n_samples"] == 12
    assert result["metrics"]["ais"]["n"] == 10
    reasons = {item["id"]: item["reason"] for item in result["excluded"]}
    assert "image file missing" in reasons[images[0].stem]
    assert "unreadable image" in reasons[images[1].stem]
    table = pd.read_parquet(copy / "samples.parquet").set_index("id")
    assert np.isnan(table.loc[images[0].stem, "ais_win"])


def test_unreadable_audio_and_frames_exclude_their_samples(runs, demo_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    samples = load_index(data, "test")
    samples[0].audio_path.write_bytes(b"RIFF broken")
    samples[1].frame_path.unlink()
    copy = copy_run(runs["sd-text"], tmp_path)
    damaged = {"data_dir": data, "allow_dataset_change": True}  # damaged after the run
    result = evaluate(EvaluateSettings(copy, metrics=("ais", "iis"), **damaged))
    reasons = {item["id"]: item["reason"] for item in result["excluded"]}
    assert "unreadable audio" in reasons[samples[0].id]
    assert "image file missing" in reasons[samples[1].id]
    assert result["metrics"]["ais"]["n"] == 10
    aic_only = evaluate(EvaluateSettings(copy, metrics=("aic",), **damaged))
    assert aic_only["n_evaluated"] == 12  # AIC needs neither the audio nor the frame


def test_fewer_than_two_samples_is_an_error(runs, tmp_path, cli):
    copy = copy_run(runs["sd-text"], tmp_path)
    for image in sorted((copy / "images").glob("*.png"))[1:]:
        image.unlink()
    code, _, err = cli("evaluate", copy, "--metrics", "iis")
    assert code == 2 and "1 evaluable samples, at least 2 are needed" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{tmp}"], "is not a finished run directory"),
        (["{run}", "--metrics", "ais,clap"], "unknown metric 'clap'"),
        (["{run}", "--data", "{tmp}/nowhere"], "does not exist"),
    ],
)
def test_evaluate_errors(runs, tmp_path, cli, arguments, message):
    arguments = [a.format(tmp=tmp_path, run=runs["sd-text"]) for a in arguments]
    code, _, err = cli("evaluate", *arguments)
    assert code == 2 and message in err and err.count("\n") == 1


def test_pool_size_draws_a_fixed_pool(runs, sd_metrics):
    pooled = evaluate(EvaluateSettings(runs["sd-text"], metrics=("ais",), pool_size=5, seed=3))
    again = evaluate(EvaluateSettings(runs["sd-text"], metrics=("ais",), pool_size=5, seed=3))
    assert pooled["metrics"]["ais"] == again["metrics"]["ais"]
    assert pooled["metrics"]["ais"]["config"]["pool"] == {"size": 5, "seed": 3}


def test_cli_prints_json_and_table(runs, cli):
    code, out, _ = cli("evaluate", runs["sd-text"], "--metrics", "aic", "--json")
    assert code == 0 and json.loads(out)["metrics"]["aic"]["n"] == 12
    code, out, _ = cli("evaluate", runs["sd-text"], "--metrics", "aic,iis")
    assert code == 0 and "AIC (up)" in out and "IIS (up)" in out


@pytest.fixture(scope="module")
def tiny_inception_weights():
    return ModelZoo("tiny", CPU).load("inception").weights_path


def test_fid_of_a_run_equals_torch_fidelity_on_the_same_folders(
    runs, sd_metrics, demo_dir, tiny_inception_weights
):
    ids = pd.read_parquet(runs["sd-text"] / "samples.parquet").id
    reference = runs["sd-text"].parent / "reference-frames"
    reference.mkdir(exist_ok=True)
    for sample_id in ids:
        shutil.copy(demo_dir / "frames" / f"{sample_id}.png", reference)
    direct = torch_fidelity.calculate_metrics(
        input1=str(runs["sd-text"] / "images"),
        input2=str(reference),
        fid=True,
        cuda=False,
        feature_extractor_weights_path=str(tiny_inception_weights),
        verbose=False,
        # Read the images in this process: torch-fidelity's DataLoader otherwise starts
        # min(4, 2 x CPUs) workers, more than a 2-core machine has (a warning per folder).
        save_cpu_ram=True,
    )["frechet_inception_distance"]
    assert sd_metrics["metrics"]["fid"]["value"] == pytest.approx(direct, rel=1e-6)
    assert direct > 1.0  # two different image sets are far apart, the test is not vacuous


def test_distance_equals_torch_fidelity_fid_and_kid(runs, cli, tiny_inception_weights):
    """`audiobench distance` (and its alias `fid`) give torch-fidelity's FID and KID for the same
    folders and Inception weights; KID with torch-fidelity's defaults but subsets of N."""
    images, frames = runs["sd-text"] / "images", runs["reference"] / "images"
    count = len(list(images.glob("*.png")))
    direct = torch_fidelity.calculate_metrics(
        input1=str(images),
        input2=str(frames),
        fid=True,
        kid=True,
        kid_subset_size=count,
        cuda=False,
        verbose=False,
        feature_extractor_weights_path=str(tiny_inception_weights),
        save_cpu_ram=True,  # no DataLoader workers, as above
    )
    code, out, _ = cli(
        "distance", images, frames, "--metrics", "fid,kid", "--profile", "tiny", "--json"
    )
    assert code == 0
    result = json.loads(out)["metrics"]
    assert result["fid"]["value"] == pytest.approx(direct["frechet_inception_distance"], rel=1e-6)
    kid = direct["kernel_inception_distance_mean"]
    assert result["kid"]["value"] == pytest.approx(kid, rel=1e-6)
    assert direct["frechet_inception_distance"] > 1.0 and abs(kid) > 1e-4  # not vacuous
    low, high = result["fid"]["ci95"]
    assert low < high
    code, out, _ = cli("fid", images, images, "--profile", "tiny", "--json")
    assert code == 0 and abs(json.loads(out)["metrics"]["fid"]["value"]) < 1e-3


def test_distance_refuses_per_sample_metrics_and_bad_folders(tmp_path, cli, runs):
    images = runs["sd-text"] / "images"
    code, _, err = cli("distance", images, images, "--metrics", "iis", "--profile", "tiny")
    assert code == 2 and "not paired" in err
    code, _, err = cli("fid", tmp_path / "a", images, "--profile", "tiny")
    assert code == 2 and "image folder" in err and "does not exist" in err
    code, _, err = cli("fid", tmp_path, images, "--profile", "tiny")
    assert code == 2 and "holds no .png or .jpg images" in err


def test_fid_command_refuses_a_truncated_inception_file(
    tmp_path, cli, runs, tiny_inception_weights
):
    from audiobench.models.inception import CHECKPOINT

    weights = tmp_path / "weights"
    (weights / "inception").mkdir(parents=True)
    (weights / "inception" / CHECKPOINT).write_bytes(tiny_inception_weights.read_bytes()[:1000])
    images = runs["sd-text"] / "images"
    code, _, err = cli("fid", images, images, "--weights-dir", weights)
    assert code == 2 and "unreadable" in err and CHECKPOINT in err
