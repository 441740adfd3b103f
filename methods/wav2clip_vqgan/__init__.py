"""`wav2clip-vqgan`: the Wav2CLIP baseline of Table 1 (VQGAN-CLIP steered by audio).

The Wav2CLIP embedding of the 5 s window is a target in CLIP ViT-B/32 image space. A VQGAN
latent grid, initialised from random codebook entries (per-sample seed), is optimised with Adam
(lr 0.1) through straight-through quantisation so that CLIP embeddings of random cutouts (32 per
step) of the decoded image approach the target under the spherical distance loss; after the
iterations (500 by default, as the public scripts) the quantised grid is decoded.

Samples are optimised together in a batch, but each one's loss, cutouts and initialisation
depend on its own seed only and Adam updates element-wise, so batching does not change the
images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from audiobench.data import Sample
from audiobench.models.zoo import LoadOptions, Role, register_role
from audiobench.registry import Method, MethodContext
from methods.wav2clip_vqgan.vqgan import VQGAN, load_taming_vqgan

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

__all__ = ["VQGAN", "Wav2CLIPVQGAN", "load_taming_vqgan", "vqgan_clip"]


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    for directory in search_dirs:
        folder = Path(directory) / "vqgan"
        if (folder / "last.ckpt").is_file() and (folder / "model.yaml").is_file():
            return folder
    return None


def _load_paper(folder: Path, options: LoadOptions) -> VQGAN:
    model = load_taming_vqgan(folder / "last.ckpt", folder / "model.yaml")
    return model.to(options.device, options.dtype)


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
        build_tiny=_build_tiny,
    )
)


@dataclass(frozen=True)
class VQGANCLIPConfig:
    iterations: int = 500
    lr: float = 0.1
    cutn: int = 32
    cut_pow: float = 1.0
    size: int = 256


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2 arcsin(|a - b| / 2)^2 for unit vectors: the VQGAN-CLIP loss."""
    return (
        (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).norm(dim=-1).div(2).arcsin().pow(2).mul(2)
    )


def _cutouts(
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
    vqgan: VQGAN, clip, targets: torch.Tensor, seeds: Sequence[int], config: VQGANCLIPConfig
) -> tuple[torch.Tensor, list[float]]:
    """Optimise one latent grid per target; returns (images in [0, 1], mean loss per step)."""
    device = next(vqgan.parameters()).device
    grid = config.size // vqgan.factor
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    codes = torch.stack(
        [
            torch.randint(vqgan.quantize.embedding.num_embeddings, (grid, grid), generator=g)
            for g in generators
        ]
    ).to(device)
    latent = vqgan.quantize.lookup(codes).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=config.lr)
    mean = torch.tensor(CLIP_MEAN, device=device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=device)[:, None, None]
    targets = targets.to(device)
    history = []
    for _ in range(config.iterations):
        images = vqgan.decode_latent(vqgan.quantize.straight_through(latent)).add(1).div(2)
        images = images.clamp(0, 1)
        cuts = torch.stack(
            [
                _cutouts(image, config.cutn, clip.image_size, config.cut_pow, g)
                for image, g in zip(images, generators, strict=True)
            ]
        )
        embedded = clip.model.encode_image(((cuts - mean) / std).flatten(0, 1))
        losses = spherical_distance(
            embedded.reshape(len(seeds), config.cutn, -1), targets[:, None, :]
        ).mean(dim=1)
        optimizer.zero_grad()
        losses.sum().backward()  # each sample's gradient comes from its own loss only
        optimizer.step()
        history.append(float(losses.detach().mean()))
    with torch.no_grad():
        final = vqgan.decode_latent(vqgan.quantize.straight_through(latent)).add(1).div(2)
    return final.clamp(0, 1), history


class Wav2CLIPVQGAN(Method):
    description = "VQGAN-CLIP steered by the Wav2CLIP audio embedding (CLIP ViT-B/32 space)"
    table_name = "Wav2Clip"
    roles = ("vqgan", "wav2clip", "clip_b32")
    Config = VQGANCLIPConfig

    def setup(self, context: MethodContext) -> None:
        self.vqgan = context.models.load("vqgan").requires_grad_(False)
        self.wav2clip = context.models.load("wav2clip")
        self.clip = context.models.load("clip_b32")
        self.clip.model.requires_grad_(False)

    def prepare(self, sample: Sample) -> np.ndarray:
        return sample.read_audio()

    def generate(self, inputs: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Image.Image]:
        targets = self.wav2clip.embed([torch.from_numpy(clip) for clip in inputs])
        images, _ = vqgan_clip(self.vqgan, self.clip, targets, seeds, self.config)
        pixels = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [Image.fromarray(array) for array in pixels]
