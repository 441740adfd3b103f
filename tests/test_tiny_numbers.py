"""Tiny-profile numbers that do not look broken (issue 20): metric models whose outputs follow
their inputs, AudioToken variants that differ, FID flagged at small N, no negative zero.

The tiny weights are seeded, so every number here is fixed; the thresholds sit well between
the collapsed models' values and the current ones (noted beside each assertion).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from PIL import Image

from audiobench import leaderboard
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.classifier import class_names
from audiobench.report import format_number, html_report, latex, load_rows, markdown
from audiobench.runner import RunSettings, execute
from tests.test_report import VALUES, make_run

CPU = LoadOptions(torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def zoo() -> ModelZoo:
    return ModelZoo("tiny", CPU)


@pytest.fixture(scope="module")
def demo_frames(demo_dir) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((demo_dir / "frames").glob("*"))]


@pytest.fixture
def clip_frames(shared_data) -> list[list[Image.Image]]:
    """Three frames (1, 5 and 9 s) of each real VGGSound clip: a Boeing 747, a train."""
    from audiobench.data.media import read_frames

    clips = []
    for video in sorted((shared_data / "clips").glob("*.mp4")):
        _, pixels = read_frames(video, [1.0, 5.0, 9.0])
        clips.append([Image.fromarray(frame) for frame in pixels])
    return clips


def cosines(embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of distinct rows."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    upper = torch.triu(torch.ones(len(unit), len(unit), dtype=torch.bool), diagonal=1)
    return (unit @ unit.T)[upper]


def test_classifier_top1_differs_between_real_frames(zoo, clip_frames):
    """Six frames: all "bald eagle" with a random class token; now bald eagle (3), iPod (2)
    and lumbermill."""
    top1 = zoo.load("classifier").top1([frame for clip in clip_frames for frame in clip])
    assert len({class_names()[index] for index in top1.tolist()}) >= 2


IMAGE_ROLES = ["clip_b32", "clip_l14", "imagebind_vision"]


@pytest.mark.parametrize("role", IMAGE_ROLES)
def test_image_embeddings_of_the_two_real_clips_differ(zoo, clip_frames, role):
    """A 747 against a train: mean cosine 0.989 (CLIP B/32), 0.993 (L/14) and 0.993 (ImageBind)
    with a random class token; 0.71, 0.59 and 0.28 now."""
    airplane, train = (zoo.load(role).embed_images(frames) for frames in clip_frames)
    assert float((airplane @ train.T).mean()) < 0.85


@pytest.mark.parametrize("role", IMAGE_ROLES)
def test_image_embeddings_of_the_demo_frames_differ(zoo, demo_frames, role):
    """Mean pairwise cosine over the 36 demo frames: 0.88 (CLIP B/32), 0.93 (L/14) and 0.93
    (ImageBind) before; 0.26, 0.33 and 0.32 now."""
    assert float(cosines(zoo.load(role).embed_images(demo_frames)).mean()) < 0.6


def test_wav2clip_embeddings_of_the_demo_clips_differ(zoo, demo_dir):
    """Mean pairwise cosine over the 12 test clips: 0.984 before the projection was centred,
    0.50 now."""
    from audiobench.data import load_index

    clips = [torch.from_numpy(sample.read_audio()) for sample in load_index(demo_dir, "test")]
    assert float(cosines(zoo.load("wav2clip").embed(clips)).mean()) < 0.8


def tiny_run(demo_dir, out, method: str, limit: int, **options: str):
    settings = RunSettings(
        method=method,
        data_dir=demo_dir,
        out=out,
        profile="tiny",
        limit=limit,
        batch_size=limit,
        options=options,
    )
    return execute(settings).run_dir


def test_audiotoken_variants_make_different_images(demo_dir, tmp_path):
    """One seed for both variants' random embedders made their images byte-identical."""
    plain, with_cl = (
        tiny_run(demo_dir, tmp_path, method, 2, steps="2")
        for method in ("audiotoken", "audiotoken-cl")
    )
    for image in (plain / "images").iterdir():
        assert image.read_bytes() != (with_cl / "images" / image.name).read_bytes()
    embedders = [
        {m["role"]: m for m in json.loads((run / "run.json").read_text())["models"]}[
            "audiotoken_embedder"
        ]
        for run in (plain, with_cl)
    ]
    assert [embedder["source"] for embedder in embedders] == ["tiny(seed=0)", "tiny(seed=1)"]
    assert embedders[0]["sha256"] != embedders[1]["sha256"]


def test_ais_differs_between_methods_whose_images_differ(demo_dir, tmp_path):
    """With near-constant CLIP image embeddings, the wins ranked the audio alone: sd-text and
    imagebind-unclip both scored 50.00 on these six samples, with the same wins per sample
    (as did audiotoken). Now 43.33 and 46.67."""
    values, wins = [], []
    for method in ("sd-text", "imagebind-unclip"):
        run = tiny_run(demo_dir, tmp_path, method, 6, steps="2")
        values.append(evaluate(EvaluateSettings(run, metrics=("ais",)))["metrics"]["ais"]["value"])
        wins.append(pd.read_parquet(run / "samples.parquet")["ais_win"].tolist())
    assert values[0] != values[1] and wins[0] != wins[1]


def test_evaluate_prints_the_reference_fid_as_zero_and_flags_its_n(demo_dir, tmp_path, cli):
    """The frames against themselves: torch-fidelity's FID is -9e-5 and the interval's lower
    end -9e-14 (rounding in the matrix square roots), once printed as -0.00."""
    run = tiny_run(demo_dir, tmp_path, "reference", 4)
    code, out, err = cli("evaluate", run, "--metrics", "fid")
    assert code == 0, err
    [fid_row] = [line.split("│")[1:5] for line in out.splitlines() if "FID (down)" in line]
    assert [cell.strip() for cell in fid_row] == ["FID (down)", "0.00", "0.00 - 0.00", "4"]
    assert "warning: FID from 4 samples, fewer than 50" in out


def small_n_run(tmp_path, n: int):
    """A report fixture run (tests/test_report.py) whose metrics come from `n` samples."""
    run_dir = make_run(tmp_path / f"n{n}", "audiotoken", VALUES["audiotoken"])
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    for result in metrics["metrics"].values():
        result["n"] = n
    metrics_file.write_text(json.dumps(metrics))
    return run_dir


@pytest.mark.parametrize("n", [4, 49])
def test_fid_below_fifty_samples_is_flagged_in_every_format(tmp_path, n):
    rows = load_rows([small_n_run(tmp_path, n)])
    flag = f"FID from fewer than 50 samples for AudioToken at N = {n}:"
    assert markdown(rows).startswith(f"> **Warning**: {flag}")
    assert r"\textbf{FID from fewer than 50 samples: biased, not comparable.}" in latex(rows)
    assert f'<p class="warning">{flag}' in html_report(rows, False, {})


def test_fid_from_fifty_samples_is_not_flagged(tmp_path):
    rows = load_rows([small_n_run(tmp_path, 50)])
    assert "fewer than" not in markdown(rows) + latex(rows) + html_report(rows, False, {})


def test_fid_of_the_reference_row_is_a_dash_and_not_flagged(tmp_path):
    """The reference frames' FID against themselves is never shown, so never flagged."""
    rows = load_rows([make_run(tmp_path, "reference", VALUES["reference"])])
    assert "FID from fewer" not in markdown(rows)


@pytest.mark.parametrize(
    ("value", "decimals", "signed", "text"),
    [
        (-0.0, 2, False, "0.00"),
        (-1.2e-13, 2, False, "0.00"),
        (-0.004, 2, False, "0.00"),
        (-0.006, 2, False, "-0.01"),
        (-0.00004, 4, False, "0.0000"),
        (-1e-9, 2, True, "+0.00"),
        (-0.5, 2, True, "-0.50"),
        (2.0, 3, True, "+2.000"),
    ],
)
def test_format_number_never_prints_a_negative_zero(value, decimals, signed, text):
    assert format_number(value, decimals, signed) == text


def test_reports_and_leaderboard_print_no_negative_zero(tmp_path):
    run_dir = make_run(tmp_path, "audiotoken", (-1e-13, -0.001, 45.0, 60.0))
    rows = load_rows([run_dir])
    for text in (markdown(rows, with_ci=True), latex(rows), html_report(rows, False, {})):
        assert "-0.00" not in text and "0.00" in text
    board = leaderboard.new_board()
    paper = board["rows"][0]  # the reference row: AIC 54.66
    ours = {"aic": {"value": paper["metrics"]["aic"]["value"] - 1e-9}, "fid": {"value": -1e-3}}
    board["rows"].append({**paper, "source": "audiobench", "metrics": ours})
    rendered = leaderboard.render(board)
    assert "AIC +0.00" in rendered and "-0.00" not in rendered
