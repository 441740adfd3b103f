"""Settings that make numbers comparable with the paper and the official code: `--limit`, the
AudioToken inference options, the Wav2CLIP recipe's pieces, training frames, frame policy."""

from __future__ import annotations

import colorsys
import dataclasses
import json

import numpy as np
import pytest
import torch
from audiobench.methods.audiotoken.method import AudioToken, AudioTokenConfig, read_centred_audio
from audiobench.methods.audiotoken.training import training_frame_size
from audiobench.methods.wav2clip_vqgan.cutouts import _homography, _shift_hue, _warp, recipe_cutouts
from audiobench.methods.wav2clip_vqgan.method import _ClampWithGradient

from audiobench.data import load_index, read_audio_window
from audiobench.data.training import frame_tensor
from audiobench.errors import AudiobenchError
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models import LoadOptions, ModelZoo
from audiobench.registry import MethodContext
from audiobench.runner import RunSettings, execute

CPU = LoadOptions(torch.device("cpu"), torch.float32)


def test_limit_takes_the_first_samples_and_is_part_of_the_identity(demo_dir, tmp_path):
    def run(limit):
        return execute(
            RunSettings("reference", demo_dir, tmp_path, profile="tiny", limit=limit, options={})
        )

    summary = run(2)
    assert summary.run_dir.name == "reference-test-first2-tiny-seed0"
    assert summary.total == summary.ok == 2
    first = [sample.id for sample in load_index(demo_dir, "test")[:2]]
    assert sorted(p.stem for p in (summary.run_dir / "images").iterdir()) == sorted(first)
    assert json.loads((summary.run_dir / "run.json").read_text())["limit"] == 2
    assert run(None).run_dir.name == "reference-test-tiny-seed0"
    with pytest.raises(AudiobenchError, match="--limit must be at least 1"):
        run(0)


def test_audio_seconds_centres_a_longer_window_inside_the_clip(demo_dir):
    sample = load_index(demo_dir, "test")[0]
    assert (sample.audio_start, sample.audio_end) == (2.5, 7.5)
    np.testing.assert_array_equal(read_centred_audio(sample, 5.0), sample.read_audio())
    whole = read_audio_window(sample.audio_path, 0.0, 10.0)  # the authors' 10 s
    np.testing.assert_array_equal(read_centred_audio(sample, 10.0), whole)
    np.testing.assert_array_equal(
        read_centred_audio(sample, 7.0), read_audio_window(sample.audio_path, 1.5, 8.5)
    )


def test_the_prompt_option_needs_the_placeholder_once(demo_dir):
    zoo = ModelZoo("tiny", CPU)
    context = MethodContext(zoo, CPU.device, CPU.dtype)
    for bad in ("a photo", "<*> and <*>"):
        method = AudioToken(dataclasses.replace(AudioTokenConfig(), prompt=bad))
        with pytest.raises(AudiobenchError, match="exactly once"):
            method.setup(context)
    method = AudioToken(AudioTokenConfig(prompt="a photo of <*>, 4k, high resolution"))
    method.setup(context)
    assert method.prompt.prompt == "a photo of <*>, 4k, high resolution"


def test_authors_inference_settings_change_the_images(demo_dir, tmp_path):
    common = {"steps": "2"}
    paper = execute(
        RunSettings("audiotoken", demo_dir, tmp_path / "a", profile="tiny", limit=2, options=common)
    )
    authors = {**common, "audio_seconds": "10", "prompt": "a photo of <*>, 4k, high resolution"}
    theirs = execute(
        RunSettings(
            "audiotoken", demo_dir, tmp_path / "b", profile="tiny", limit=2, options=authors
        )
    )
    assert paper.ok == theirs.ok == 2
    for image in (paper.run_dir / "images").iterdir():
        assert image.read_bytes() != (theirs.run_dir / "images" / image.name).read_bytes()
    config = json.loads((theirs.run_dir / "run.json").read_text())["method_config"]
    assert config["audio_seconds"] == 10.0 and config["prompt"].endswith("high resolution")


def test_training_frames_have_the_official_shape():
    pipeline = ModelZoo("tiny", CPU).load("sd")
    assert training_frame_size(pipeline) == (64, 40)  # 512 x 320 at SD's 512 px
    from PIL import Image

    image = Image.fromarray(np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3))
    frame = frame_tensor(image, (512, 320))
    assert frame.shape == (3, 320, 512)
    resized = np.asarray(image.resize((512, 320), Image.Resampling.BICUBIC), dtype=np.float32)
    np.testing.assert_allclose(frame.permute(1, 2, 0).numpy(), resized / 127.5 - 1, atol=1e-6)


def test_homography_maps_the_four_points():
    source = torch.tensor([[0.0, 0.0], [10.0, 1.0], [9.0, 12.0], [1.0, 8.0]])
    target = torch.tensor([[0.0, 0.0], [15.0, 0.0], [15.0, 15.0], [0.0, 15.0]])
    matrix = _homography(source, target)
    mapped = torch.cat([source, torch.ones(4, 1)], dim=1) @ matrix.T
    torch.testing.assert_close(mapped[:, :2] / mapped[:, 2:], target, atol=1e-4, rtol=0)


def test_identity_warp_keeps_the_image():
    images = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(_warp(images, torch.eye(3).repeat(2, 1, 1)), images)


def test_hue_shift_matches_colorsys():
    pixels = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    shifted = _shift_hue(pixels, torch.full((1, 1, 1, 1), 0.1))
    for y in range(4):
        for x in range(4):
            h, s, v = colorsys.rgb_to_hsv(*pixels[0, :, y, x].tolist())
            expected = colorsys.hsv_to_rgb((h + 0.1) % 1, s, v)
            np.testing.assert_allclose(shifted[0, :, y, x].numpy(), expected, atol=1e-5)
    torch.testing.assert_close(
        _shift_hue(pixels, torch.zeros(1, 1, 1, 1)), pixels, atol=1e-6, rtol=0
    )


def test_recipe_cutouts_depend_only_on_the_generator():
    image = torch.rand(3, 64, 48)

    def cuts(seed):
        return recipe_cutouts(image, 8, 32, torch.Generator().manual_seed(seed))

    first = cuts(3)
    assert first.shape == (8, 3, 32, 32)
    torch.testing.assert_close(cuts(3), first, rtol=0, atol=0)
    assert not torch.allclose(cuts(4), first)
    assert (first[1:] - first[:1]).abs().amax() > 0.05  # the cutouts differ from each other


def test_clamp_with_gradient_passes_gradients_back_into_range():
    values = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    clamped = _ClampWithGradient.apply(values, 0.0, 1.0)
    assert clamped.tolist() == [0.0, 0.5, 1.0]
    clamped.backward(torch.tensor([-1.0, -1.0, -1.0]))  # a step of -lr * grad raises every value
    assert values.grad.tolist() == [-1.0, -1.0, 0.0]  # 1.5 would go further out: blocked


def test_metrics_record_the_reference_frame_policy(demo_dir, tmp_path):
    run = execute(RunSettings("reference", demo_dir, tmp_path, profile="tiny", limit=4))
    report = evaluate(EvaluateSettings(run.run_dir, metrics=["iis"]))
    assert report["reference_frames"] == {"policy": "synthetic"}  # the demo's drawn pictures
