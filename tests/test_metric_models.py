"""The metric roles on the tiny profile: real architectures whose outputs follow their inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.classifier import class_names
from audiobench.models.wav2clip import Wav2CLIP

CPU = LoadOptions(torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def zoo():
    return ModelZoo("tiny", CPU)


@pytest.fixture(scope="module")
def images(demo_dir):
    frames = sorted((demo_dir / "frames").glob("*.png"))[:6]
    return [Image.open(path).convert("RGB") for path in frames]


def off_diagonal_spread(embeddings: torch.Tensor) -> float:
    """How different the rows are: 1 - mean cosine between distinct rows."""
    unit = torch.nn.functional.normalize(embeddings, dim=1)
    cosine = unit @ unit.T
    mask = ~torch.eye(len(unit), dtype=torch.bool)
    return float(1 - cosine[mask].mean())


@pytest.mark.parametrize(("role", "width"), [("clip_b32", 512), ("clip_l14", 768)])
def test_clip_embeddings_are_unit_and_follow_the_input(zoo, images, role, width):
    encoder = zoo.load(role)
    embedded = encoder.embed_images(images)
    assert embedded.shape == (6, width)
    torch.testing.assert_close(embedded.norm(dim=1), torch.ones(6))
    assert off_diagonal_spread(embedded) > 1e-4
    texts = encoder.embed_texts(["a photo of a siren", "raining", "church bell ringing"])
    assert texts.shape == (3, width) and off_diagonal_spread(texts) > 1e-3
    torch.testing.assert_close(encoder.embed_images(images[:2]), embedded[:2])


def test_wav2clip_follows_the_audio_and_ignores_its_batch(zoo, demo_dir):
    from audiobench.data import load_index

    model = zoo.load("wav2clip")
    clips = [torch.from_numpy(sample.read_audio()) for sample in load_index(demo_dir, "test")[:4]]
    together = model.embed(clips)
    assert together.shape == (4, 512) and off_diagonal_spread(together) > 1e-5
    alone = torch.cat([model.embed([clip]) for clip in clips])
    torch.testing.assert_close(alone, together, rtol=1e-4, atol=1e-5)


def test_wav2clip_spectrogram_is_the_official_front_end():
    """Power spectrogram, n_fft 512, hop 353, periodic Hann, centred with reflection."""
    model = Wav2CLIP()
    audio = torch.randn(2, 16000)
    expected = (
        torch.stft(
            audio,
            512,
            hop_length=353,
            window=torch.hann_window(512),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()
        ** 2
    )
    torch.testing.assert_close(model.audio_encoder.spectrogram(audio), expected)


def test_wav2clip_loads_the_official_key_layout(tmp_path):
    torch.manual_seed(1)
    source = Wav2CLIP().eval()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    assert sum(k.startswith("audio_encoder.") for k in state) == 121
    assert sum(k.startswith("audio_transform.") for k in state) == 4
    state["image_transform.sequential.0.weight"] = torch.zeros(512, 512)  # ignored, as upstream
    state["loss_fn_a.logit_scale"] = torch.zeros(())
    path = tmp_path / "Wav2CLIP.pt"
    torch.save(state, path)
    loaded = Wav2CLIP.from_checkpoint(path)
    audio = torch.randn(2, 32000)
    torch.testing.assert_close(loaded.embed(list(audio)), source.embed(list(audio)))


def test_wav2clip_checkpoint_errors(tmp_path):
    state = Wav2CLIP().state_dict()
    state["audio_transform.sequential.3.weight"] = torch.zeros(256, 512)
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(AudiobenchError, match=r"wrong shapes: audio_transform.sequential.3.weight"):
        Wav2CLIP.from_checkpoint(tmp_path / "wrong.pt")
    torch.save(Wav2CLIP().state_dict(), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:5000])
    with pytest.raises(AudiobenchError, match=r"cut\.pt is unreadable"):
        Wav2CLIP.from_checkpoint(tmp_path / "cut.pt")


def test_classifier_predicts_different_classes_for_different_images(zoo, images):
    classifier = zoo.load("classifier")
    noise = [
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (64, 64, 3), np.uint8))
        for k in range(6)
    ]
    predictions = classifier.top1(images + noise)
    assert predictions.shape == (12,) and len(set(predictions.tolist())) >= 3
    assert len(class_names()) == 1000
    assert class_names()[407] == "ambulance" and class_names()[734] == "police van"


def test_inception_features_separate_image_sets(zoo, images):
    inception = zoo.load("inception")
    pixels = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images])
    features = inception.features(pixels)
    assert features.shape == (6, 2048)
    assert features.std(dim=0).mean() > 1e-3  # not the collapsed default initialisation
