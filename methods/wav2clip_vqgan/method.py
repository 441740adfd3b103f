"""`wav2clip-vqgan`: the Wav2CLIP baseline of Table 1 (VQGAN-CLIP steered by audio).

The default is the public recipe of the Wav2CLIP repository (`scripts/VQGAN-CLIP/generate.py`
with `main.py`'s arguments): the Wav2CLIP embedding of the audio is the single prompt (weight 1)
in CLIP ViT-B/32 image space; a 512 x 512 VQGAN f16-16384 latent grid, initialised from random
codebook entries (per-sample seed), is optimised with Adam (lr 0.1) for 500 steps through
straight-through quantisation so that CLIP embeddings of 32 augmented, noisy cutouts
(`cutouts.py`) of the decoded image approach the prompt under the spherical distance loss;
after each step the latent is clamped to the codebook's per-dimension range, and the decoded
image is clamped to [0, 1] with the script's gradient-preserving clamp. The image after the
last step is kept (the script's last save is after 500 steps).

`--set recipe=simple` is audiobench's earlier, cheaper variant: random square crops (size
drawn with `cut_pow`) pooled to CLIP's size, no augmentation or noise, a plain clamp and no
latent clamp.

Samples are optimised together in a batch, but each one's loss, cutouts and initialisation
depend on its own seed only and Adam updates element-wise, so batching does not change the
images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from audiobench.methods.wav2clip_vqgan import WAV2CLIP_VQGAN
from audiobench.methods.wav2clip_vqgan.cutouts import recipe_cutouts
from audiobench.methods.wav2clip_vqgan.vqgan import (
    PARTS,
    VQGAN,
    load_taming_vqgan,
    vqgan_from_config,
)
from PIL import Image

from audiobench.bounds import bounded
from audiobench.data import Sample
from audiobench.errors import AudiobenchError
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    WeightLayout,
    download_file,
    published_config,
    register_role,
)
from audiobench.registry import Method, MethodContext

PAPER_CONFIG = "vqgan-imagenet-f16-16384.yaml"  # taming's model.yaml of the release
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_DDCONFIG = {
    "double_z": False,
    "z_channels": 8,
    "resolution": 32,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [8],
    "dropout": 0.0,
}
TINY_STEPS, TINY_CUTN, TINY_SIZE = 20, 2, 32  # the `tiny` profile's defaults (`tiny_defaults`)

__all__ = ["VQGAN", "Wav2CLIPVQGAN", "load_taming_vqgan", "vqgan_clip"]


# The taming-transformers README's links for vqgan_imagenet_f16_16384.
VQGAN_URLS = {
    "last.ckpt": "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/"
    "?p=%2Fckpts%2Flast.ckpt&dl=1",
    "model.yaml": "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/"
    "?p=%2Fconfigs%2Fmodel.yaml&dl=1",
}


def _fetch(weights_dir: Path) -> Path:
    folder = Path(weights_dir) / "vqgan"
    for name, url in VQGAN_URLS.items():
        download_file(url, folder / name)
    return folder


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    for directory in search_dirs:
        folder = Path(directory) / "vqgan"
        if (folder / "last.ckpt").is_file() and (folder / "model.yaml").is_file():
            return folder
    return None


def _load_paper(folder: Path, options: LoadOptions) -> VQGAN:
    model = load_taming_vqgan(folder / "last.ckpt", folder / "model.yaml")
    return model.to(options.device, options.dtype)


def _build_paper_random(options: LoadOptions) -> VQGAN:
    """The published f16-16384 architecture from its embedded model.yaml, random weights."""
    model = vqgan_from_config(published_config(PAPER_CONFIG), PAPER_CONFIG)
    return model.eval().to(options.device, options.dtype)


def _build_tiny(options: LoadOptions) -> VQGAN:
    return VQGAN(8, 64, TINY_DDCONFIG).eval().to(options.device, options.dtype)


VQGAN_ROLE = register_role(
    Role(
        name="vqgan",
        description="taming VQGAN ImageNet f16 16384: the Wav2CLIP baseline's image decoder",
        paper_source="taming-transformers vqgan_imagenet_f16_16384 (last.ckpt + model.yaml)",
        how_to_obtain="the vqgan_imagenet_f16_16384 release of taming-transformers: last.ckpt "
        "and model.yaml at WEIGHTS/vqgan/",
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=_build_paper_random,
        build_tiny=_build_tiny,
        layout=WeightLayout({"": ("last.ckpt",)}, entry="state_dict", prefixes=PARTS),
        fetch=_fetch,
    )
)


RECIPES = ("wav2clip", "simple")


@dataclass(frozen=True)
class VQGANCLIPConfig:
    steps: int = bounded(500, low=1)
    lr: float = bounded(0.1, low=0, low_inclusive=False)
    cutn: int = bounded(32, low=1)
    size: int = bounded(512, low=16, multiple_of=16)  # whole latent cells of the f16 VQGAN
    recipe: str = "wav2clip"  # or "simple" (see the module docstring)
    cut_pow: float = bounded(1.0, low=0)  # the simple recipe's crop-size exponent


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2 arcsin(|a - b| / 2)^2 for unit vectors: the VQGAN-CLIP loss."""
    return (
        (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).norm(dim=-1).div(2).arcsin().pow(2).mul(2)
    )


class _ClampWithGradient(torch.autograd.Function):
    """Clamp whose gradient still passes where it points back into the range (the script's
    `clamp_with_grad`), so clipped pixels can recover."""

    @staticmethod
    def forward(context, values: torch.Tensor, low: float, high: float) -> torch.Tensor:
        context.low, context.high = low, high
        context.save_for_backward(values)
        return values.clamp(low, high)

    @staticmethod
    def backward(context, gradient: torch.Tensor):
        (values,) = context.saved_tensors
        outside = values - values.clamp(context.low, context.high)
        return gradient * (gradient * outside >= 0), None, None


def _simple_cutouts(
    image: torch.Tensor, count: int, size: int, power: float, generator: torch.Generator
) -> torch.Tensor:
    """`count` random square crops of a (3, H, W) image, pooled to `size` (MakeCutouts)."""
    side = min(image.shape[1:])
    smallest = min(side, size)
    crops = []
    for _ in range(count):
        extent = int(torch.rand((), generator=generator) ** power * (side - smallest) + smallest)
        top = int(torch.randint(image.shape[1] - extent + 1, (), generator=generator))
        left = int(torch.randint(image.shape[2] - extent + 1, (), generator=generator))
        crop = image[:, top : top + extent, left : left + extent]
        crops.append(F.adaptive_avg_pool2d(crop, size))
    return torch.stack(crops)


def vqgan_clip(
    vqgan: VQGAN,
    clip,
    targets: torch.Tensor,
    seeds: Sequence[int],
    config: VQGANCLIPConfig,
    report_step: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[torch.Tensor, list[float]]:
    """Optimise one latent grid per target; returns (images in [0, 1], mean loss per step).
    `report_step(done, steps)` follows each step (a batch takes minutes at the paper's size)."""
    if config.recipe not in RECIPES:
        raise AudiobenchError(f"option recipe must be one of {', '.join(RECIPES)}")
    recipe = config.recipe == "wav2clip"
    device = next(vqgan.parameters()).device
    grid = config.size // vqgan.factor
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    codebook = vqgan.quantize.embedding.weight
    codes = torch.stack(
        [torch.randint(codebook.shape[0], (grid, grid), generator=g) for g in generators]
    ).to(device)
    latent = vqgan.quantize.lookup(codes).detach().clone().requires_grad_(True)
    low, high = codebook.min(dim=0).values[:, None, None], codebook.max(dim=0).values[:, None, None]
    optimizer = torch.optim.Adam([latent], lr=config.lr)
    mean = torch.tensor(CLIP_MEAN, device=device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=device)[:, None, None]
    targets = targets.to(device)

    def decode() -> torch.Tensor:
        images = vqgan.decode_latent(vqgan.quantize.straight_through(latent)).add(1).div(2)
        return _ClampWithGradient.apply(images, 0.0, 1.0) if recipe else images.clamp(0, 1)

    def cutouts(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if recipe:
            return recipe_cutouts(image, config.cutn, clip.image_size, generator)
        return _simple_cutouts(image, config.cutn, clip.image_size, config.cut_pow, generator)

    history = []
    for step in range(config.steps):
        images = decode()
        cuts = torch.stack([cutouts(image, g) for image, g in zip(images, generators, strict=True)])
        embedded = clip.model.encode_image(((cuts - mean) / std).flatten(0, 1)).float()
        losses = spherical_distance(
            embedded.reshape(len(seeds), config.cutn, -1), targets[:, None, :]
        ).mean(dim=1)
        optimizer.zero_grad()
        losses.sum().backward()  # each sample's gradient comes from its own loss only
        optimizer.step()
        if recipe:
            with torch.no_grad():
                latent.copy_(torch.maximum(torch.minimum(latent, high), low))
        history.append(float(losses.detach().mean()))
        report_step(step + 1, config.steps)
    with torch.no_grad():
        final = decode()
    return final.clamp(0, 1), history


class Wav2CLIPVQGAN(Method, card=WAV2CLIP_VQGAN):
    table_name = "Wav2Clip"
    Config = VQGANCLIPConfig
    # The tiny VQGAN upsamples its latent grid 2 times, not 16: at 512 px its attention spans
    # 256 x 256 cells, one backward pass takes minutes (and cannot be interrupted), the demo
    # hours. These run every stage of the recipe in about the time sd-text takes.
    tiny_defaults = {"steps": TINY_STEPS, "cutn": TINY_CUTN, "size": TINY_SIZE}

    def setup(self, context: MethodContext) -> None:
        self.report_step = context.report_step
        self.vqgan = context.models.load("vqgan").requires_grad_(False)
        self.wav2clip = context.models.load("wav2clip")
        self.clip = context.models.load("clip_b32")
        self.clip.model.requires_grad_(False)

    def prepare(self, sample: Sample) -> np.ndarray:
        return sample.read_audio()

    def generate(self, inputs: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Image.Image]:
        targets = self.wav2clip.embed([torch.from_numpy(clip) for clip in inputs])
        images, _ = vqgan_clip(self.vqgan, self.clip, targets, seeds, self.config, self.report_step)
        pixels = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(array) for array in pixels]
