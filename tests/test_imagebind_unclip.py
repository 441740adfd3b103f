"""The ImageBind + unCLIP baseline: audio branch, official key layout, preprocessing, runs."""

from __future__ import annotations

import hashlib

import pytest
import soundfile
import torch
import torchaudio

from audiobench.errors import AudiobenchError
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.models.imagebind import (
    AUDIO_PREFIXES,
    TINY_DIMS,
    ImageBindAudioEncoder,
    clip_starts,
)
from audiobench.runner import RunSettings, execute

AIRPLANE_WAV = "clips/-_gaZzFfzDQ_517000_527000.wav"


def test_clip_layout_follows_the_official_sampler():
    assert clip_starts(160_000) == [0, 42_666, 85_333]  # 10 s: k * 8 s / 3, rounded down
    assert clip_starts(80_000) == [0, 16_000, 32_000]  # the 5 s window: overlapping clips
    assert clip_starts(20_000) == [0, 0, 0]  # shorter than a clip


def test_mel_of_a_real_clip_matches_kaldi_fbank(shared_data):
    audio, rate = soundfile.read(shared_data / AIRPLANE_WAV, dtype="float32")
    window = torch.from_numpy(audio[40_000:120_000])  # the 2.5-7.5 s evaluation window
    mel = ImageBindAudioEncoder.preprocess(window[None])
    assert rate == 16_000 and mel.shape == (1, 3, 1, 128, 204)
    first = window[:32_000] - window[:32_000].mean()
    expected = torchaudio.compliance.kaldi.fbank(
        first[None],
        htk_compat=True,
        sample_frequency=16_000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_length=25,
        frame_shift=10,
    ).T
    assert expected.shape == (128, 198)
    torch.testing.assert_close(mel[0, 0, 0, :, :198], (expected + 4.268) / 9.138)
    padded = mel[0, :, 0, :, 198:]
    torch.testing.assert_close(padded, torch.full_like(padded, 4.268 / 9.138))
    assert not torch.allclose(mel[0, 0], mel[0, 2])  # three different clips


def test_official_checkpoint_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    source = ImageBindAudioEncoder(**TINY_DIMS).eval()
    state = dict(source.state_dict())
    assert all(key.startswith(AUDIO_PREFIXES) for key in state)
    assert "modality_postprocessors.audio.1.log_logit_scale" in state
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.zeros(96, 32)
    state["modality_heads.text.proj.0.weight"] = torch.zeros(32, 32)
    torch.save(state, tmp_path / "imagebind_huge.pth")
    loaded = ImageBindAudioEncoder.from_official_checkpoint(
        tmp_path / "imagebind_huge.pth", **TINY_DIMS
    )
    mel = ImageBindAudioEncoder.preprocess(torch.randn(2, 80_000) * 0.1)
    torch.testing.assert_close(loaded(mel), source(mel), rtol=0, atol=0)


def test_wrong_dimensions_name_the_tensor(tmp_path):
    torch.save(ImageBindAudioEncoder(**TINY_DIMS).state_dict(), tmp_path / "small.pth")
    with pytest.raises(AudiobenchError, match="wrong shapes: modality_"):
        ImageBindAudioEncoder.from_official_checkpoint(tmp_path / "small.pth")


def test_embeddings_follow_the_audio_and_keep_the_scale():
    torch.manual_seed(1)
    encoder = ImageBindAudioEncoder(**TINY_DIMS).eval()
    audio = torch.randn(3, 80_000) * 0.1
    audio[2] = torch.sin(torch.arange(80_000) * 0.2)
    with torch.no_grad():
        embedded = encoder(ImageBindAudioEncoder.preprocess(audio))
    assert embedded.shape == (3, TINY_DIMS["out_dim"])
    assert (embedded.norm(dim=1) <= 20 + 1e-4).all()  # a mean of vectors of norm 20
    assert not torch.allclose(embedded[0], embedded[2], atol=1e-3)
    again = encoder(ImageBindAudioEncoder.preprocess(audio[:1]))
    torch.testing.assert_close(again[0], embedded[0], rtol=1e-5, atol=1e-5)


def test_the_feature_embedding_is_the_methods_embedding():
    """`embed` (the feature pipeline's) gives the method's conditioning: x 20, not unit."""
    import numpy as np
    from audiobench.methods.imagebind_unclip.method import ImageBindUnCLIP

    torch.manual_seed(2)
    method = ImageBindUnCLIP.__new__(ImageBindUnCLIP)
    method.encoder = ImageBindAudioEncoder(**TINY_DIMS).eval()
    audio = [
        np.random.default_rng(seed).normal(0, 0.1, 80_000).astype(np.float32) for seed in (0, 1)
    ]
    expected = method.embed(audio)
    embedded = method.encoder.embed([torch.from_numpy(clip) for clip in audio])
    torch.testing.assert_close(embedded, expected, rtol=0, atol=0)
    assert (embedded.norm(dim=1) > 15).all()  # means of three (similar) vectors of norm 20


def test_imagebind_unclip_runs_reproducibly_and_evaluates(demo_dir, tmp_path):
    def run(out):
        return execute(
            RunSettings(
                method="imagebind-unclip",
                data_dir=demo_dir,
                out=out,
                profile="tiny",
                batch_size=4,
                options={"steps": "2"},
            )
        )

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first.ok == 12

    def digests(summary):
        return [
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((summary.run_dir / "images").glob("*.png"))
        ]

    assert digests(first) == digests(second)
    assert len(set(digests(first))) == 12  # every clip gets its own image
    result = evaluate(EvaluateSettings(first.run_dir, metrics=("ais", "aic")))
    assert result["metrics"]["ais"]["n"] == 12


def test_the_embeddings_pipeline_equals_diffusers_with_its_image_encoder():
    """Without the CLIP image encoder, given embeddings give the images diffusers' own
    pipeline gives with an encoder present (which it only asks for its dtype)."""
    from diffusers import StableUnCLIPImg2ImgPipeline
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from audiobench.models import LoadOptions, ModelZoo

    ours = ModelZoo("tiny", LoadOptions(torch.device("cpu"), torch.float32)).load("unclip")
    assert ours.image_encoder is None
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2
        )
    )
    components = {**ours.components, "image_encoder": encoder}
    reference = StableUnCLIPImg2ImgPipeline(**components)
    reference.set_progress_bar_config(disable=True)
    embeds = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))

    def images(pipeline, noise_level):
        return pipeline(
            image_embeds=embeds,
            prompt=["", ""],
            noise_level=noise_level,
            num_inference_steps=2,
            generator=[torch.Generator().manual_seed(seed) for seed in (1, 2)],
            output_type="pt",
        ).images

    for noise_level in (0, 100):
        torch.testing.assert_close(images(ours, noise_level), images(reference, noise_level))
