"""`clip_l14_336`, CMMD's image encoder: OpenAI CLIP ViT-L/14@336px with CMMD's preprocessing.

The reference is google-research `cmmd/io_util.py` (largest centred square, PIL bicubic to
336 x 336, / 255) and `cmmd/embedding.py` (bicubic resize to 336, CLIP mean/std, unit vectors);
its PyTorch port (sayakpaul/cmmd-pytorch) does the second resize with `interpolate` and the
normalisation with transformers' `CLIPImageProcessor`. The tests below redo those steps
independently and hold `ClipEncoder.pixels` to them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.manifest import role_manifest
from tests.conftest import SHARED_DATA

CPU = LoadOptions(torch.device("cpu"), torch.float32)
SIZE = 336
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def encoder():
    return ModelZoo("tiny", CPU).load("clip_l14_336")


@pytest.fixture(scope="module")
def frames(demo_dir) -> list[Image.Image]:
    """The demo dataset's PNG frames (square, 256 px) as read from disk."""
    return [Image.open(path) for path in sorted((demo_dir / "frames").glob("*.png"))[:4]]


@pytest.fixture(scope="module")
def video_frames() -> list[Image.Image]:
    """Two frames of each real VGGSound clip (1280 x 720); none without the shared data."""
    from audiobench.data.media import read_frames

    images = []
    for video in sorted((SHARED_DATA / "clips").glob("*.mp4")):
        _, pixels = read_frames(video, [2.0, 7.0])
        images += [Image.fromarray(frame) for frame in pixels]
    return images


def synthetic_images() -> list[Image.Image]:
    """Smooth gradients plus noise, wide, tall and odd-sized (the crop offsets round down),
    greyscale, and already 336 px."""
    rng = np.random.default_rng(0)
    images = []
    for height, width in [(301, 517), (640, 263), (SIZE, SIZE), (97, 98)]:
        y, x = np.mgrid[0:height, 0:width]
        smooth = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
        noise = rng.integers(0, 56, (height, width, 3))
        images.append(Image.fromarray((smooth + noise).astype(np.uint8)))
    images.append(images[0].convert("L"))
    return images


def reference_resized(image: Image.Image) -> np.ndarray:
    """CMMD's io_util, then embedding's resize: float32 HWC in [0, 1], 336 x 336."""
    array = np.asarray(image)
    if array.ndim == 2:  # greyscale: the channel repeated
        array = np.repeat(array[..., None], 3, axis=-1)
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(np.ascontiguousarray(array[top : top + side, left : left + side]))
    resized = np.asarray(square.resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.float32) / 255.0
    batch = torch.from_numpy(resized).permute(2, 0, 1)[None]
    batch = torch.nn.functional.interpolate(batch, size=(SIZE, SIZE), mode="bicubic")
    return batch[0].permute(1, 2, 0).numpy()


def reference_pixels(image: Image.Image) -> torch.Tensor:
    resized = torch.from_numpy(reference_resized(image)).permute(2, 0, 1)
    mean, std = (torch.tensor(values)[:, None, None] for values in (CLIP_MEAN, CLIP_STD))
    return (resized - mean) / std


def assert_pixels_match(encoder, images, reference) -> None:
    expected = torch.stack([reference(image) for image in images])
    pixels = encoder.pixels(images)
    assert pixels.shape == (len(images), 3, SIZE, SIZE) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, expected.float(), rtol=0, atol=1e-6)


def test_tiny_embeds_real_images_to_unit_vectors(encoder, frames, video_frames):
    images = frames + video_frames
    embedded = encoder.embed_images(images)
    assert embedded.shape == (len(images), 768) and embedded.dtype == torch.float32
    torch.testing.assert_close(embedded.norm(dim=1), torch.ones(len(images)))
    assert not torch.allclose(embedded[0], embedded[-1], atol=1e-4)
    torch.testing.assert_close(encoder.embed_images(images[:2]), embedded[:2])
    assert encoder.embed_texts(["a train passing a station"]).shape == (1, 768)


def test_pixels_are_cmmds_preprocessing(encoder, frames):
    assert encoder.image_size == SIZE
    assert_pixels_match(encoder, frames + synthetic_images(), reference_pixels)


def test_pixels_of_real_video_frames_are_cmmds_preprocessing(encoder, video_frames):
    if not video_frames:
        pytest.skip(f"real VGGSound clips not found at {SHARED_DATA} (only in the project's CI)")
    assert_pixels_match(encoder, video_frames, reference_pixels)


def test_the_crop_keeps_the_aspect_ratio(encoder):
    """A wide image is cropped to its centre, not squashed: its centre square alone gives
    the same pixels, its side bands none of them."""
    wide = synthetic_images()[0]  # 517 x 301: centre square from x = 108
    centre = wide.crop((108, 0, 409, 301))
    torch.testing.assert_close(encoder.pixels([wide]), encoder.pixels([centre]), rtol=0, atol=0)


def test_pixels_match_transformers_clip_image_processor(encoder, frames):
    """The PyTorch port's normalisation: CLIPImageProcessor with resizing, cropping and
    rescaling off, on the resized [0, 1] images (built from its settings: no download)."""
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "CLIPImageProcessor"):
        pytest.skip("this transformers has no CLIPImageProcessor")
    processor = transformers.CLIPImageProcessor(
        do_resize=False,
        do_center_crop=False,
        do_rescale=False,
        do_normalize=True,
        do_convert_rgb=False,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    images = frames[:2] + synthetic_images()[:2]
    resized = [reference_resized(image) for image in images]
    expected = processor(images=resized, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(encoder.pixels(images), expected.float(), rtol=0, atol=1e-6)


def test_preprocessing_is_not_shared_with_the_224_px_encoders(encoder):
    zoo = ModelZoo("tiny", CPU)
    keys = {zoo.load(role).preprocess_key for role in ("clip_b32", "clip_l14")}
    assert len(keys) == 1 and encoder.preprocess_key not in keys


def test_manifest_is_the_published_vit_l14_336():
    """open_clip's ViT-L-14-336 at full size: ViT-L/14's 427,616,513 parameters plus the
    positional embeddings of (336 / 14)^2 - (224 / 14)^2 = 320 more patches, 1024 wide."""
    shapes = role_manifest("clip_l14_336")["model"]
    assert shapes["visual.positional_embedding"] == (577, 1024)
    assert shapes["visual.proj"] == (1024, 768)
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == 427_944_193
