"""The Wav2CLIP + VQGAN-CLIP baseline: taming VQGAN without taming, the optimisation, runs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml
from audiobench.methods.wav2clip_vqgan.method import (
    TINY_DDCONFIG,
    VQGAN,
    VQGANCLIPConfig,
    load_taming_vqgan,
    vqgan_clip,
)
from audiobench.methods.wav2clip_vqgan.vqgan import PARTS

from audiobench.errors import AudiobenchError
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models import LoadOptions, ModelZoo
from audiobench.runner import RunSettings, execute

CPU = LoadOptions(torch.device("cpu"), torch.float32)


def tiny_vqgan(seed=0):
    torch.manual_seed(seed)
    return VQGAN(8, 64, TINY_DDCONFIG).eval()


def test_codes_round_trip_shapes_and_follow_the_codes():
    model = tiny_vqgan()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    codes = model.encode_code(images)
    assert codes.shape == (2, 16, 16) and codes.dtype == torch.long
    decoded = model.decode_code(codes)
    assert decoded.shape == (2, 3, 32, 32)
    other = model.decode_code(torch.zeros_like(codes))
    assert not torch.allclose(decoded, other)
    torch.testing.assert_close(model.decode_code(codes), decoded)


def test_loads_an_official_taming_checkpoint_with_its_yaml(tmp_path):
    source = tiny_vqgan(1)
    state = {key: value.clone() for key, value in source.state_dict().items()}
    assert all(key.startswith(PARTS) for key in state)
    assert "encoder.down.0.block.0.conv1.weight" in state and "quantize.embedding.weight" in state
    state["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)  # training-only keys
    state["loss.perceptual_loss.scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    torch.save({"state_dict": state, "global_step": 1}, tmp_path / "last.ckpt")
    config = {
        "model": {
            "target": "taming.models.vqgan.VQModel",
            "params": {"embed_dim": 8, "n_embed": 64, "ddconfig": TINY_DDCONFIG},
        }
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(config))
    loaded = load_taming_vqgan(tmp_path / "last.ckpt", tmp_path / "model.yaml")
    codes = torch.randint(64, (1, 16, 16))
    torch.testing.assert_close(loaded.decode_code(codes), source.decode_code(codes), rtol=0, atol=0)


def test_bad_vqgan_files_are_named(tmp_path):
    (tmp_path / "model.yaml").write_text("model: {params: {}}")
    with pytest.raises(AudiobenchError, match=r"model\.yaml is not a taming model\.yaml"):
        load_taming_vqgan(tmp_path / "last.ckpt", tmp_path / "model.yaml")
    (tmp_path / "model.yaml").write_text(
        yaml.safe_dump(
            {"model": {"params": {"embed_dim": 8, "n_embed": 64, "ddconfig": TINY_DDCONFIG}}}
        )
    )
    torch.save({"weights": {}}, tmp_path / "last.ckpt")
    with pytest.raises(AudiobenchError, match="has no 'state_dict' entry"):
        load_taming_vqgan(tmp_path / "last.ckpt", tmp_path / "model.yaml")


@pytest.fixture(scope="module")
def clip_b32():
    return ModelZoo("tiny", CPU).load("clip_b32")


@pytest.mark.parametrize("recipe", ["wav2clip", "simple"])
def test_optimisation_lowers_the_loss_and_ignores_batching(clip_b32, recipe):
    """In float64, so that the comparison checks the logic: in float32 the straight-through
    quantisation and the codebook clamp amplify batched kernels' rounding (a float32 run differs
    by up to 0.3 after 25 steps, a float64 one by 5e-15)."""
    model = tiny_vqgan().requires_grad_(False).double()
    clip = copy.deepcopy(clip_b32)
    clip.model.requires_grad_(False).double()
    noise = torch.randn(2, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    targets = torch.nn.functional.normalize(noise, dim=-1)
    config = VQGANCLIPConfig(steps=25, cutn=4, size=32, recipe=recipe)
    images, history = vqgan_clip(model, clip, targets, [3, 4], config)
    assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert sum(history[-5:]) < sum(history[:5])  # noisy cutouts: compare five-step means
    alone, _ = vqgan_clip(model, clip, targets[1:], [4], config)
    torch.testing.assert_close(alone[0], images[1], rtol=0, atol=1e-10)


def test_spherical_distance_extremes():
    from audiobench.methods.wav2clip_vqgan.method import spherical_distance

    a = torch.tensor([[1.0, 0.0]])
    assert float(spherical_distance(a, a)) == 0.0
    assert float(spherical_distance(a, -a)) == pytest.approx(math.pi**2 / 2)


def test_wav2clip_vqgan_runs_and_evaluates(demo_dir, tmp_path):
    options = {"steps": "3", "size": "32", "cutn": "4"}
    summary = execute(
        RunSettings(
            method="wav2clip-vqgan",
            data_dir=demo_dir,
            out=tmp_path,
            profile="tiny",
            batch_size=6,
            options=options,
        )
    )
    assert summary.ok == 12
    result = evaluate(EvaluateSettings(summary.run_dir, metrics=("ais", "iis")))
    assert result["metrics"]["ais"]["n"] == 12
