"""`sd-text`: Stable Diffusion prompted with the class label, the paper's text topline.

It sees the label rather than the audio, so it bounds what an audio-conditioned SD can reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from audiobench.methods.sd_text import SD_TEXT
from PIL import Image

from audiobench.bounds import bounded
from audiobench.data import Sample
from audiobench.registry import Method, MethodContext


@dataclass(frozen=True)
class SDTextConfig:
    prompt: str = "A photo of a {label}"
    guidance_scale: float = bounded(7.5, low=0)
    steps: int = bounded(50, low=1)


class StableDiffusionText(Method, card=SD_TEXT):
    table_name = "SD (text labels)"
    conditioning = "text"
    Config = SDTextConfig

    def setup(self, context: MethodContext) -> None:
        self.pipeline = context.models.load("sd")

    def prepare(self, sample: Sample) -> str:
        return self.config.prompt.format(label=sample.label)

    def generate(self, inputs: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        # One CPU generator per image: its initial noise depends on its own seed only, not on
        # the batch it lands in or the device, so batching and resuming give the same images.
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return self.pipeline(
            list(inputs),
            generator=generators,
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance_scale,
        ).images
