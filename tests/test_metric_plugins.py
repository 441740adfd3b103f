"""Metrics as plugins: the built-in entry points, a third-party metric evaluated, reported,
verified and put on the leaderboard with no change to audiobench, and a broken plugin."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from audiobench.data import load_index
from audiobench.metrics.plugin import default_metrics, discover_metrics
from audiobench.models import LoadOptions, ModelZoo
from tests.test_evaluation import make_run
from tests.test_registry import install_distribution

CPU = LoadOptions(torch.device("cpu"), torch.float32)

FRAME_COSINE = '''
"""A third-party metric: the mean cosine of each image and its own reference frame."""
import numpy as np
from audiobench.features import FeatureKind
from audiobench.metrics import Metric, MetricResult

IMAGE = FeatureKind("clip_b32", "image")


class FrameCosine(Metric):
    name = "framecos"
    label = "FrameCos"
    description = "cosine of an image and its reference frame (CLIP B/32)"
    higher_is_better = True
    inputs = {"generated": (IMAGE,), "frames": (IMAGE,)}
    columns = ("framecos_cos",)
    score_column = "framecos_cos"

    def compute(self, inputs, settings):
        a = inputs.features["generated", IMAGE].astype(np.float64)
        b = inputs.features["frames", IMAGE].astype(np.float64)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return MetricResult(
            100 * cos.mean(), len(cos), (100 * cos.min(), 100 * cos.max()), {"role": "clip_b32"},
            {"framecos_cos": cos},
        )
'''


@pytest.fixture
def metric_site(tmp_path, monkeypatch):
    """A site folder with the `frame-cosine` distribution installed in it."""
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(
        site,
        "frame-cosine",
        {"framecos": "frame_cosine:FrameCosine"},
        FRAME_COSINE,
        group="audiobench.metrics",
    )
    monkeypatch.syspath_prepend(str(site))
    discover_metrics.cache_clear()
    yield site
    sys.modules.pop("frame_cosine", None)
    discover_metrics.cache_clear()


def test_every_builtin_metric_is_an_entry_point():
    names = {entry.name for entry in entry_points(group="audiobench.metrics")}
    assert names >= {"ais", "iis", "aic", "fid", "sid", "kid", "cmmd", "ais-ib"}
    assert default_metrics() == ("aic", "fid", "ais", "iis")  # Table 1's column order


def test_a_third_party_metric_runs_through_every_command(metric_site, demo_dir, tmp_path, cli):
    run = make_run(demo_dir, tmp_path / "runs", "sd-text", steps="2")
    code, _, err = cli("evaluate", run, "--metrics", "aic,framecos", "--profile", "tiny")
    assert code == 0, err
    result = json.loads((run / "metrics.json").read_text())["metrics"]["framecos"]
    assert result["value"] == pytest.approx(_frame_cosine_by_hand(run, demo_dir), rel=1e-5)
    assert result["n"] == 12 and result["higher_is_better"] is True

    code, listing, _ = cli("metrics")
    assert code == 0 and "framecos" in listing and "cosine of an image" in listing
    code, table, _ = cli("report", run, "--metrics", "aic,framecos")
    assert code == 0 and "| AIC ↑ | FrameCos ↑ | N |" in table
    assert f"{result['value']:.2f}" in table
    code, out, _ = cli("verify", run)
    assert code == 0 and "consistent" in out

    board = tmp_path / "board.json"
    code, _, err = cli("leaderboard", "add", run, "--file", board, "--force")
    assert code == 0, err
    rows = json.loads(board.read_text())["rows"]
    assert rows[-1]["metrics"]["framecos"]["value"] == pytest.approx(result["value"])
    code, _, _ = cli("leaderboard", "render", "--file", board, "--out", tmp_path / "board.md")
    assert code == 0 and "FrameCos ↑" in (tmp_path / "board.md").read_text()

    table = pd.read_parquet(run / "samples.parquet")
    table["framecos_cos"] = table["framecos_cos"] * 0.5
    table.to_parquet(run / "samples.parquet")
    code, out, _ = cli("verify", run)
    assert code == 1 and "framecos" in out


def _frame_cosine_by_hand(run, demo_dir) -> float:
    """The metric computed independently: each image embedded alone, a plain loop."""
    encoder = ModelZoo("tiny", CPU).load("clip_b32")
    cosines = []
    for sample in load_index(demo_dir, "test"):
        pair = []
        for path in (run / "images" / f"{sample.id}.png", sample.frame_path):
            with Image.open(path) as image:
                pair.append(encoder.embed_images([image.convert("RGB")])[0].double().numpy())
        cosines.append(float(np.dot(*pair) / np.linalg.norm(pair[0]) / np.linalg.norm(pair[1])))
    return 100 * float(np.mean(cosines))


def test_a_broken_metric_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch, cli):
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(
        site,
        "broken-metric",
        {"broken": "broken_metric:Missing"},
        "raise ImportError('needs a library that is absent')\n",
        group="audiobench.metrics",
    )
    monkeypatch.syspath_prepend(str(site))
    discover_metrics.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"'broken' from broken-metric .* skipped.*absent"):
            metrics = discover_metrics()
        assert "broken" not in metrics and {"ais", "fid"} <= set(metrics)
        code, listing, _ = cli("metrics")
        assert code == 0 and "ais" in listing
        code, _, err = cli("evaluate", tmp_path, "--metrics", "broken")
        assert code == 2 and "unknown metric 'broken'" in err
    finally:
        sys.modules.pop("broken_metric", None)
        discover_metrics.cache_clear()
