"""`audiobench.score`, `evaluate --images`, `metrics.mmd` and the feature cache's keys."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import audiobench
from audiobench import store
from audiobench.data import load_index
from audiobench.evaluation import EvaluateSettings, evaluate, fresh_cache
from audiobench.metrics import mmd
from audiobench.models import zoo
from audiobench.store import RunDirectory
from tests.test_evaluation import make_run

SET_METRICS = ("aic", "ais", "iis", "fid", "kid", "cmmd")


@pytest.fixture(scope="module")
def run(demo_dir, tmp_path_factory):
    return make_run(demo_dir, tmp_path_factory.mktemp("runs"), "sd-text", steps="2")


@pytest.fixture(scope="module")
def evaluated(run):
    return evaluate(EvaluateSettings(run, metrics=SET_METRICS, profile="tiny", device="cpu"))


def test_score_of_paths_equals_evaluate_of_the_run(run, evaluated, demo_dir):
    samples = load_index(demo_dir, "test")
    scores = audiobench.score(
        [run / "images" / f"{sample.id}.png" for sample in samples],
        frames=[sample.frame_path for sample in samples],
        audio=[sample.read_audio() for sample in samples],
        labels=[sample.label for sample in samples],
        metrics=SET_METRICS,
        profile="tiny",
        device="cpu",
    )
    for name in SET_METRICS:
        assert scores[name]["value"] == pytest.approx(evaluated["metrics"][name]["value"], 1e-6)
        assert scores[name]["ci95"] == pytest.approx(evaluated["metrics"][name]["ci95"], 1e-6)
    table = pd.read_parquet(run / "samples.parquet").set_index("id")
    wins = table.loc[[sample.id for sample in samples], "iis_win"]
    np.testing.assert_allclose(scores["iis"]["per_sample"]["iis_win"], wins)


def test_folders_pil_images_and_tensors_score_alike(run, demo_dir, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for sample in load_index(demo_dir, "test"):
        shutil.copy(sample.frame_path, frames / f"{sample.id}.png")
    by_folder = audiobench.score(
        run / "images", frames=frames, metrics=["iis", "fid"], profile="tiny", device="cpu"
    )
    paths = sorted((run / "images").glob("*.png"))
    pil = [Image.open(path).convert("RGB") for path in paths]
    tensors = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in pil])
    frame_pil = [Image.open(path).convert("RGB") for path in sorted(frames.glob("*.png"))]
    for generated in (pil, tensors, tensors.float() / 255):
        again = audiobench.score(
            generated, frames=frame_pil, metrics=["iis", "fid"], profile="tiny", device="cpu"
        )
        for name in ("iis", "fid"):
            assert again[name]["value"] == pytest.approx(by_folder[name]["value"], rel=1e-6)


def test_score_errors_name_what_is_missing(run):
    with pytest.raises(audiobench.errors.AudiobenchError, match="'iis' needs frames"):
        audiobench.score(run / "images", metrics=["iis"], profile="tiny", device="cpu")
    with pytest.raises(audiobench.errors.AudiobenchError, match="3 labels for 12"):
        audiobench.score(run / "images", labels=["a"] * 3, profile="tiny", device="cpu")


def _mmd_by_loops(x: np.ndarray, y: np.ndarray, sigma: float, scale: float) -> float:
    """google-research/cmmd's estimator written out pair by pair."""

    def mean_kernel(a, b):
        total = sum(
            np.exp(-np.sum((p - q) ** 2) / (2 * sigma**2))
            for p in a.astype(np.float64)
            for q in b.astype(np.float64)
        )
        return total / (len(a) * len(b))

    return scale * (mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y))


def test_mmd_equals_the_cmmd_reference_formula():
    generator = np.random.default_rng(0)
    x = generator.normal(size=(9, 6)).astype(np.float32)
    y = generator.normal(loc=0.7, size=(13, 6)).astype(np.float32)
    assert mmd(x, y) == pytest.approx(_mmd_by_loops(x, y, 10.0, 1000.0), rel=1e-9)
    assert mmd(x, y, sigma=1.5, scale=1.0) == pytest.approx(_mmd_by_loops(x, y, 1.5, 1.0), 1e-9)
    assert mmd(x, y) > 0.1
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-9)  # identical sets: the extreme score
    shifted = (x.astype(np.float64) + 5.0, y.astype(np.float64) + 5.0)
    assert mmd(*shifted) == pytest.approx(mmd(x, y), rel=1e-9)  # translation invariant
    with pytest.raises(ValueError, match="equal D"):
        mmd(x, y[:, :4])


def test_evaluate_images_turns_a_folder_into_a_reported_run(run, demo_dir, tmp_path, cli):
    folder = tmp_path / "my images"
    folder.mkdir()
    ids = sorted(path.stem for path in (run / "images").glob("*.png"))
    for sample_id in ids[:9]:
        shutil.copy(run / "images" / f"{sample_id}.png", folder)
    with Image.open(run / "images" / f"{ids[9]}.png") as image:
        image.convert("RGB").save(folder / f"{ids[9]}.jpg", quality=95)
    (folder / f"{ids[10]}.png").write_bytes(b"not a png")
    (folder / "stranger.png").write_bytes((run / "images" / f"{ids[0]}.png").read_bytes())
    (folder / "linked.png").symlink_to(run / "images" / f"{ids[0]}.png")
    code, out, err = cli(
        "evaluate", "--images", folder, "--data", demo_dir, "--out", tmp_path / "runs",
        "--name", "mine", "--profile", "tiny", "--metrics", "aic,iis,fid",
    )  # fmt: skip
    assert code == 0, err
    assert "10 images imported" in out and "1 samples without an image" in out
    assert "1 unreadable images" in out and "2 images matching no sample" in out
    imported = tmp_path / "runs" / "external-mine-test"
    record = json.loads((imported / "run.json").read_text())
    assert record["method"] == "external:mine"
    assert record["method_config"]["source"] == str(folder.resolve())
    assert record["unmatched_images"] == ["linked.png", "stranger.png"]
    metrics = json.loads((imported / "metrics.json").read_text())
    assert metrics["metrics"]["iis"]["n"] == 10
    assert {item["id"] for item in metrics["excluded"]} == {ids[10], ids[11]}
    table = pd.read_parquet(imported / "samples.parquet").set_index("id")
    assert table.loc[ids[0], "image_sha256"] == table.loc[ids[0], "source_sha256"]  # PNG kept
    assert table.loc[ids[9], "image_sha256"] != table.loc[ids[9], "source_sha256"]  # JPEG
    assert "unreadable image" in table.loc[ids[10], "error"]

    code, report, _ = cli("report", imported)
    assert code == 0 and "| mine |" in report
    code, out, _ = cli("verify", imported)
    assert code == 0 and "consistent" in out
    code, _, err = cli(
        "human-eval", "export", imported, "--out", tmp_path / "sheets", "--per-method", "5"
    )
    assert code == 0, err
    code, _, err = cli(
        "evaluate", "--images", folder, "--data", demo_dir, "--out", tmp_path / "runs",
        "--name", "../escape", "--profile", "tiny",
    )  # fmt: skip
    assert code == 2 and "--name" in err


def _computed_features(monkeypatch) -> dict[str, int]:
    """Counts, by role, the features computed (stored in a cache) from now on."""
    counts: dict[str, int] = {}
    original = store.FeatureCache.put

    def put(cache, keys, values):
        role = cache.folder.name.split("-")[0]
        counts[role] = counts.get(role, 0) + len(keys)
        original(cache, keys, values)

    monkeypatch.setattr(store.FeatureCache, "put", put)
    return counts


def test_a_preprocessing_change_recomputes_every_feature(run, evaluated, monkeypatch):
    before = evaluated["feature_caches"]
    assert any(name.startswith("clip_l14-") for name in before)
    role = zoo.get_role("clip_l14")
    changed = dataclasses.replace(role, preprocessing={**role.preprocessing, "image_size": 448})
    monkeypatch.setitem(zoo._ROLES, "clip_l14", changed)
    computed = _computed_features(monkeypatch)
    again = evaluate(
        EvaluateSettings(run, metrics=("iis",), profile="tiny", device="cpu", replace=True)
    )
    assert computed == {"clip_l14": 24}  # images and frames: its cached features no longer match
    renamed = [name for name in again["feature_caches"] if name.startswith("clip_l14-")]
    assert renamed and not set(renamed) & set(before)
    assert again["metrics"]["iis"]["value"] == pytest.approx(evaluated["metrics"]["iis"]["value"])


def test_no_cache_computes_everything_and_leaves_no_cache(run, evaluated, monkeypatch):
    computed = _computed_features(monkeypatch)
    fresh = evaluate(
        EvaluateSettings(run, metrics=("ais", "fid"), profile="tiny", device="cpu", no_cache=True)
    )
    assert computed == {"clip_b32": 12, "wav2clip": 12, "inception": 24}
    assert not fresh_cache(RunDirectory(run)).exists() and not (run / "features").exists()
    for name in ("ais", "fid"):
        expected = evaluated["metrics"][name]["value"]  # float rounding of other batchings
        assert fresh["metrics"][name]["value"] == pytest.approx(expected, rel=1e-6)
