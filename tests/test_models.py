"""The model zoo: the tiny profile is real and varied, paper weights resolve or are reported."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.clip_tokenizer import clip_tokenizer
from audiobench.models.zoo import files_sha256, state_sha256

CPU = LoadOptions(torch.device("cpu"), torch.float32)
PROMPTS = [
    "A photo of a ambulance siren",
    "A photo of a bird chirping, tweeting",
    "A photo of a police car (siren)!",
    "Ünïcode and numbers 1234 are fine",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_tokenizer_is_the_real_clip_tokenizer(prompt):
    ours = clip_tokenizer()(prompt).input_ids
    reference = open_clip.get_tokenizer("ViT-B-32")([prompt])[0].tolist()
    assert ours == reference[: len(ours)]
    assert ours[0] == 49406 and ours[-1] == 49407 and len(ours) > 3


@pytest.fixture(scope="module")
def tiny_sd():
    return ModelZoo("tiny", CPU).load("sd")


def generate(pipeline, prompts, seeds):
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    images = pipeline(prompts, generator=generators, num_inference_steps=3, output_type="np")
    return images.images


def test_tiny_sd_output_varies_with_prompt_and_seed(tiny_sd):
    images = generate(tiny_sd, [PROMPTS[0], PROMPTS[1], PROMPTS[0]], [0, 0, 1])
    assert images.shape == (3, 64, 64, 3)
    assert images.std(axis=(1, 2, 3)).min() > 0.05  # not a flat image
    assert np.abs(images[0] - images[1]).mean() > 0.01  # the prompt matters
    assert np.abs(images[0] - images[2]).mean() > 0.01  # the seed matters
    again = generate(tiny_sd, [PROMPTS[0]], [0])  # alone instead of in a batch of three
    np.testing.assert_allclose(again[0], images[0], atol=1e-5)


def test_tiny_weights_are_seeded_and_recorded():
    first, second = ModelZoo("tiny", CPU), ModelZoo("tiny", CPU)
    assert state_sha256(first.load("sd")) == state_sha256(second.load("sd"))
    assert first.load("sd") is first.load("sd")  # loaded once per zoo
    [record] = first.provenance()
    assert record["role"] == "sd" and record["profile"] == "tiny"
    assert record["sha256"] == state_sha256(first.load("sd"))


def test_files_sha256_covers_every_weight_file(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "model.safetensors").write_bytes(b"unet weights")
    (tmp_path / "vae.bin").write_bytes(b"vae weights")
    (tmp_path / "config.json").write_text("{}")  # configs are not weights

    def sha(data):
        return hashlib.sha256(data).hexdigest()

    listing = f"unet/model.safetensors:{sha(b'unet weights')}\nvae.bin:{sha(b'vae weights')}\n"
    assert files_sha256(tmp_path) == sha(listing.encode())
    assert files_sha256(tmp_path / "vae.bin") == sha(b"vae weights")
    (tmp_path / "vae.bin").write_bytes(b"other weights")
    assert files_sha256(tmp_path) != sha(listing.encode())  # the hash cache notices the change


def fake_sd_folder(weights):
    folder = weights / "sd"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (folder / part).mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"0")
    return folder


FAKE_WEIGHT_FILES = {
    "clip_b32": "open_clip_model.safetensors",
    "clip_l14": "open_clip_pytorch_model.bin",
    "clip_l14_336": "open_clip_model.safetensors",
    "wav2clip": "Wav2CLIP.pt",
    "classifier": "model.safetensors",
    "inception": "weights-inception-2015-12-05-6726825d.pth",
    "beats": "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt",
    "imagebind_audio": "imagebind_huge.pth",
    "imagebind_vision": "imagebind_huge.pth",
    "unclip": "model_index.json",
    "vqgan": "last.ckpt",
    "xvector": "embedding_model.ckpt",
}


def test_models_check_reports_found_and_missing_roles(cli, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    code, out, _ = cli("models", "check", "--weights-dir", weights)
    assert code == 1
    assert "missing" in out and "CompVis/stable-diffusion-v1-4" in out and "Wav2CLIP.pt" in out

    fake_sd_folder(weights)
    code, out, _ = cli("models", "check", "--weights-dir", weights)
    assert code == 1
    sd_row = next(line for line in out.splitlines() if line.startswith("│ sd "))
    assert "found" in sd_row and "sd-text" in sd_row
    summary = " ".join(out.split())  # rich wraps long lines
    assert (
        "missing for the paper profile: beats, classifier, clip_b32, clip_l14, clip_l14_336, "
        "imagebind_audio, imagebind_vision, inception, unclip, vqgan, wav2clip, xvector" in summary
    )

    for role, name in FAKE_WEIGHT_FILES.items():
        (weights / role).mkdir()
        (weights / role / name).write_bytes(b"0")
    (weights / "vqgan" / "model.yaml").write_text("model: {}")
    code, out, _ = cli("models", "check", "--weights-dir", weights)
    assert code == 0, out
    assert "missing" not in out and "AIS" in out

    code, out, _ = cli("models", "check", "--profile", "tiny")
    assert code == 0 and "built in" in out


def test_weights_dir_from_environment(tmp_path, monkeypatch):
    folder = fake_sd_folder(tmp_path)
    monkeypatch.setenv("AUDIOBENCH_WEIGHTS", str(tmp_path))
    assert ModelZoo("paper", CPU).locate("sd") == folder


def test_the_hub_caches_the_tests_see_are_their_own_and_offline():
    """huggingface_hub reads its settings when first imported, during collection: conftest
    must have set them by then, or `locate` would find the user's real downloads."""
    from huggingface_hub import constants

    home = Path(os.environ["AUDIOBENCH_CACHE"]).parent
    assert constants.HF_HUB_OFFLINE
    assert Path(constants.HF_HUB_CACHE).is_relative_to(home)
    assert Path(os.environ["TORCH_HOME"]).is_relative_to(home)


def test_paper_profile_never_falls_back_to_tiny(cli, demo_dir, tmp_path):
    out, weights = tmp_path / "r", tmp_path / "empty"
    code, _, err = cli(
        "run", "--method", "sd-text", "--data", demo_dir, "--out", out, "--weights-dir", weights
    )
    assert code == 2
    assert "missing weights for the paper profile" in err and "sd:" in err
    assert not list((tmp_path / "r").rglob("*.png"))


def test_unknown_profile_and_role():
    with pytest.raises(AudiobenchError, match="unknown profile 'huge'"):
        ModelZoo("huge", CPU)
    with pytest.raises(AudiobenchError, match=r"unknown model role 'sdd'.*did you mean 'sd'"):
        ModelZoo("tiny", CPU).load("sdd")
