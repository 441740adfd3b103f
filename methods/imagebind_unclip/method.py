"""`imagebind-unclip`: the ImageBind baseline of Table 1 (the Anything2Image recipe).

The ImageBind audio embedding of the 5 s window (three 2 s clips, each L2-normalised x 20, then
averaged) is given to Stable unCLIP 2.1 as `image_embeds`, with an empty prompt and noise level
0 (Anything2Image's defaults); unCLIP's own defaults: 20 DDIM steps (its scheduler config),
guidance 10, 768 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from audiobench.methods.imagebind_unclip import IMAGEBIND_UNCLIP
from audiobench.methods.imagebind_unclip import unclip as _unclip  # noqa: F401  (registers `unclip`)
from PIL import Image

from audiobench.bounds import bounded
from audiobench.data import Sample
from audiobench.models.imagebind import ImageBindAudioEncoder  # the `imagebind_audio` role
from audiobench.registry import Method, MethodContext

__all__ = ["ImageBindUnCLIP"]


@dataclass(frozen=True)
class ImageBindUnCLIPConfig:
    noise_level: int = bounded(0, low=0, high=999)  # a timestep of unCLIP's 1000-step noiser
    steps: int = bounded(20, low=1)
    guidance_scale: float = bounded(10.0, low=0)
    prompt: str = ""


class ImageBindUnCLIP(Method, card=IMAGEBIND_UNCLIP):
    table_name = "ImageBind"
    Config = ImageBindUnCLIPConfig

    def setup(self, context: MethodContext) -> None:
        self.pipeline = context.models.load("unclip")
        self.encoder: ImageBindAudioEncoder = context.models.load("imagebind_audio")
        self.device = context.device

    def prepare(self, sample: Sample) -> np.ndarray:
        return sample.read_audio()

    @torch.no_grad()
    def embed(self, audio: Sequence[np.ndarray]) -> torch.Tensor:
        return self.encoder.encode(torch.from_numpy(np.stack(audio)))

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
