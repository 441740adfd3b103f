"""ImageBind's vision branch (`imagebind_vision`) and the roles of both branches: the official
key layout and size, ImageBind's image preprocessing, real frames, and the paper loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from audiobench.errors import AudiobenchError
from audiobench.features import COMPUTERS
from audiobench.models import LoadOptions, ModelZoo, get_role
from audiobench.models.imagebind import (
    AUDIO_PREFIXES,
    CHECKPOINT,
    TINY_DIMS,
    URL,
    VISION_PREFIXES,
    ImageBindAudioEncoder,
    ImageBindVisionEncoder,
)
from audiobench.models.manifest import role_manifest

CPU = LoadOptions(torch.device("cpu"), torch.float32)
MANIFEST = Path(__file__).parent / "fixtures" / "manifests" / "imagebind_vision.json"
CLIPS = {
    "airplane": "clips/-_gaZzFfzDQ_517000_527000.mp4",
    "train": "clips/3YOH4c9HXpo_290000_300000.mp4",
}
PUBLISHED_PARAMETERS = 632_829_440  # imagebind_huge's vision branch, from the authors' code


@pytest.fixture(scope="module")
def zoo():
    return ModelZoo("tiny", CPU)


@pytest.fixture
def frames(shared_data) -> list[Image.Image]:
    """Two real 1280 x 720 video frames: an airplane, a train."""
    from audiobench.data.media import read_frames

    images = []
    for clip in CLIPS.values():
        _, [pixels] = read_frames(shared_data / clip, [5.0])
        images.append(Image.fromarray(pixels))
    return images


def test_tiny_vision_embeds_real_frames_to_unit_vectors_deterministically(zoo, frames):
    encoder = zoo.load("imagebind_vision")
    assert isinstance(encoder, ImageBindVisionEncoder)
    embedded = encoder.embed_images(frames)
    assert embedded.dtype == torch.float32 and embedded.device.type == "cpu"
    assert embedded.shape == (2, TINY_DIMS["out_dim"])
    torch.testing.assert_close(embedded.norm(dim=1), torch.ones(2))
    assert embedded[0] @ embedded[1] < 0.999  # the image decides the embedding
    # a fresh zoo builds the same seeded weights; an image's embedding ignores its batch
    again = ModelZoo("tiny", CPU).load("imagebind_vision").embed_images(frames[1:2])
    torch.testing.assert_close(again[0], embedded[1], rtol=1e-5, atol=1e-6)


def test_the_feature_pipeline_computes_both_branches(zoo, frames):
    """`image` and `audio` features of the tiny roles: rows of the same (joint) width."""
    vision = COMPUTERS["image"](zoo.load("imagebind_vision"))
    images = vision.forward(vision.prepare(frames))
    assert vision.prepare_key == ImageBindVisionEncoder.preprocess_key
    assert vision.prepare_key != COMPUTERS["image"](zoo.load("clip_b32")).prepare_key
    audio = COMPUTERS["audio"](zoo.load("imagebind_audio"))
    clips = [np.sin(np.arange(80_000, dtype=np.float32) * f) for f in (0.05, 0.2)]
    sounds = audio.forward(audio.prepare(clips))
    assert images.shape == (2, 32) and sounds.shape == (2, 32)
    assert images.dtype == sounds.dtype == np.float32


def test_preprocessing_is_imagebinds_vision_transform(frames):
    """Equal to the authors' `load_and_transform_vision_data` Compose, for real frames and for
    odd inputs (portrait, greyscale, RGBA: converted to RGB first, as the authors do)."""
    from torchvision import transforms

    official = transforms.Compose(
        [
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(
                mean=(0.48145466, 0.4578275, 0.40821073),
                std=(0.26862954, 0.26130258, 0.27577711),
            ),
        ]
    )
    rng = np.random.default_rng(0)
    odd = [
        Image.fromarray(rng.integers(0, 256, (300, 170, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (90, 120), dtype=np.uint8), mode="L"),
        Image.fromarray(rng.integers(0, 256, (224, 224, 4), dtype=np.uint8), mode="RGBA"),
    ]
    images = [*frames, *odd]
    pixels = ImageBindVisionEncoder(**TINY_DIMS).pixels(images)
    assert pixels.shape == (5, 3, 224, 224) and pixels.dtype == torch.float32
    expected = torch.stack([official(image.convert("RGB")) for image in images])
    torch.testing.assert_close(pixels, expected, rtol=0, atol=0)


def test_the_vision_branch_has_the_published_size():
    """Built on the meta device: imagebind_huge's vision keys and parameter count."""
    authors = json.loads(MANIFEST.read_text())["keys"]
    count = sum(int(np.prod(shape)) for shape in authors.values())  # no buffers in vision
    assert count == PUBLISHED_PARAMETERS
    with torch.device("meta"):
        model = ImageBindVisionEncoder()
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS
    ours = role_manifest("imagebind_vision")[""]
    assert {key: list(shape) for key, shape in ours.items()} == authors
    assert ours["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] == (1280, 3, 2, 14, 14)
    assert ours["modality_preprocessors.vision.pos_embedding_helper.pos_embed"] == (1, 257, 1280)
    assert ours["modality_heads.vision.2.weight"] == (1024, 1280)
    assert "modality_trunks.vision.pre_transformer_layer.0.weight" in ours
    assert not any(key.endswith(("bias_k", "bias_v")) for key in ours)  # audio's only
    assert all(key.startswith(VISION_PREFIXES) for key in ours)


def _full_checkpoint(path: Path) -> tuple[ImageBindVisionEncoder, ImageBindAudioEncoder]:
    """A file laid out like imagebind_huge.pth (both branches and a text key), tiny sized."""
    torch.manual_seed(3)
    vision = ImageBindVisionEncoder(**TINY_DIMS).eval()
    audio = ImageBindAudioEncoder(**TINY_DIMS).eval()
    state = {**vision.state_dict(), **audio.state_dict()}
    state["modality_heads.text.proj.0.weight"] = torch.zeros(32, 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return vision, audio


def test_one_checkpoint_loads_both_branches(tmp_path, frames):
    path = tmp_path / CHECKPOINT
    vision, audio = _full_checkpoint(path)
    loaded = ImageBindVisionEncoder.from_official_checkpoint(path, **TINY_DIMS)
    assert not loaded.training
    pixels = vision.pixels(frames)
    torch.testing.assert_close(
        loaded.embed_pixels(pixels), vision.embed_pixels(pixels), rtol=0, atol=0
    )
    heard = ImageBindAudioEncoder.from_official_checkpoint(path, **TINY_DIMS)
    clips = [torch.randn(80_000) * 0.1]
    torch.testing.assert_close(heard.embed(clips), audio.embed(clips), rtol=0, atol=0)


def test_a_checkpoint_missing_a_vision_key_names_the_file_and_key(tmp_path):
    path = tmp_path / CHECKPOINT
    _full_checkpoint(path)
    state = torch.load(path)
    del state["modality_trunks.vision.pre_transformer_layer.0.weight"]
    torch.save(state, path)
    with pytest.raises(AudiobenchError) as error:
        ImageBindVisionEncoder.from_official_checkpoint(path, **TINY_DIMS)
    message = str(error.value)
    assert str(path) in message and "ImageBindVisionEncoder" in message
    assert "1 missing keys (e.g. modality_trunks.vision.pre_transformer_layer.0.weight)" in message
    ImageBindAudioEncoder.from_official_checkpoint(path, **TINY_DIMS)  # the audio part is whole


def test_the_paper_profile_finds_one_file_for_both_roles(tmp_path):
    """The vision role takes its own folder first, then the audio role's copy of the same file;
    the audio role keeps to its own."""
    weights = tmp_path / "weights"
    audio_copy = weights / "imagebind_audio" / CHECKPOINT
    _full_checkpoint(audio_copy)
    zoo = ModelZoo("paper", CPU, weights)
    assert zoo.locate("imagebind_vision") == audio_copy
    assert zoo.locate("imagebind_audio") == audio_copy
    assert zoo.identify("imagebind_vision").path == str(audio_copy)  # one file, one hash
    assert zoo.identify("imagebind_vision").sha256 == zoo.identify("imagebind_audio").sha256
    own = weights / "imagebind_vision" / CHECKPOINT
    _full_checkpoint(own)
    assert ModelZoo("paper", CPU, weights).locate("imagebind_vision") == own
    audio_copy.unlink()
    assert ModelZoo("paper", CPU, weights).locate("imagebind_audio") is None
    assert "WEIGHTS/imagebind_audio/" in get_role("imagebind_vision").how_to_obtain


def test_fetch_downloads_the_published_file_into_each_roles_folder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "audiobench.models.imagebind.download_file",
        lambda url, target: calls.append((url, target)) or target,
    )
    for role in ("imagebind_vision", "imagebind_audio"):
        assert get_role(role).fetch(tmp_path) == tmp_path / role / CHECKPOINT
    assert calls == [
        (URL, tmp_path / "imagebind_vision" / CHECKPOINT),
        (URL, tmp_path / "imagebind_audio" / CHECKPOINT),
    ]
    assert get_role("imagebind_audio").layout.prefixes == AUDIO_PREFIXES
    assert get_role("imagebind_vision").layout.prefixes == VISION_PREFIXES


def test_tiny_branches_share_the_tiny_unclip_width():
    from audiobench.methods.imagebind_unclip.unclip import TINY_EMBED_DIM

    assert TINY_DIMS["out_dim"] == TINY_EMBED_DIM  # tiny audio embeddings feed the tiny unCLIP
