"""`imagebind-unclip`: the ImageBind baseline of Table 1 (the Anything2Image recipe).

The ImageBind audio embedding of the 5 s window (three 2 s clips, each L2-normalised x 20, then
averaged) is given to Stable unCLIP 2.1 as `image_embeds`, with an empty prompt and noise level
0 (Anything2Image's defaults); unCLIP's own defaults: 20 DDIM steps (its scheduler config),
guidance 10, 768 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from audiobench.data import Sample
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    WeightLayout,
    download_file,
    register_role,
    torch_hub_file,
    weight_file,
)
from audiobench.registry import Method, MethodContext
from methods.imagebind_unclip.encoder import PREFIXES, ImageBindAudioEncoder
from methods.imagebind_unclip.unclip import TINY_EMBED_DIM  # also registers the `unclip` role

CHECKPOINT = "imagebind_huge.pth"
URL = f"https://dl.fbaipublicfiles.com/imagebind/{CHECKPOINT}"
TINY_DIMS = {"embed_dim": 32, "num_blocks": 2, "num_heads": 2, "out_dim": TINY_EMBED_DIM}

__all__ = ["ImageBindAudioEncoder", "ImageBindUnCLIP"]


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "imagebind_audio", [CHECKPOINT]) or torch_hub_file(CHECKPOINT)


def _load_paper(path: Path, options: LoadOptions) -> ImageBindAudioEncoder:
    return ImageBindAudioEncoder.from_official_checkpoint(path).to(options.device, options.dtype)


def _build_tiny(options: LoadOptions) -> ImageBindAudioEncoder:
    return ImageBindAudioEncoder(**TINY_DIMS).eval().to(options.device, options.dtype)


IMAGEBIND_AUDIO = register_role(
    Role(
        name="imagebind_audio",
        description="ImageBind (huge) audio branch: 1024-d embedding for the unCLIP baseline",
        paper_source=f"{CHECKPOINT} (audio keys)",
        how_to_obtain=f"{CHECKPOINT} from {URL} at WEIGHTS/imagebind_audio/{CHECKPOINT}",
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=lambda options: (
            ImageBindAudioEncoder().eval().to(options.device, options.dtype)
        ),
        build_tiny=_build_tiny,
        layout=WeightLayout({"": ("",)}, prefixes=PREFIXES),
        fetch=lambda weights_dir: download_file(
            URL, Path(weights_dir) / "imagebind_audio" / CHECKPOINT
        ),
    )
)


@dataclass(frozen=True)
class ImageBindUnCLIPConfig:
    noise_level: int = 0
    steps: int = 20
    guidance_scale: float = 10.0
    prompt: str = ""


class ImageBindUnCLIP(Method):
    description = "ImageBind audio embedding as unCLIP 2.1's image embedding (Anything2Image)"
    table_name = "ImageBind"
    roles = ("unclip", "imagebind_audio")
    Config = ImageBindUnCLIPConfig

    def setup(self, context: MethodContext) -> None:
        self.pipeline = context.models.load("unclip")
        self.encoder = context.models.load("imagebind_audio")
        self.device = context.device

    def prepare(self, sample: Sample) -> np.ndarray:
        return sample.read_audio()

    @torch.no_grad()
    def embed(self, audio: Sequence[np.ndarray]) -> torch.Tensor:
        mel = ImageBindAudioEncoder.preprocess(torch.from_numpy(np.stack(audio)))
        parameter = next(self.encoder.parameters())
        return self.encoder(mel.to(parameter.device, parameter.dtype))

    def generate(self, inputs: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Image.Image]:
        embeddings = self.embed(inputs).to(self.pipeline.unet.dtype)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return self.pipeline(
            image_embeds=embeddings,
            prompt=[self.config.prompt] * len(inputs),
            noise_level=self.config.noise_level,
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance_scale,
            generator=generators,
        ).images
