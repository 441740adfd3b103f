"""`reference`: the reference frames themselves, the "Reference" row of Table 1.

Scoring the real frames with the same metrics gives the ceiling the paper reports for AIC.
"""

from __future__ import annotations

from collections.abc import Sequence

from audiobench.methods.reference import REFERENCE
from PIL import Image

from audiobench.data import Sample, read_frame
from audiobench.registry import Method, MethodContext


class ReferenceFrames(Method, card=REFERENCE):
    table_name = "Reference (real frames)"
    conditioning = "reference"

    def setup(self, context: MethodContext) -> None:
        """Nothing to load: the frames are the output."""

    def prepare(self, sample: Sample) -> Image.Image:
        return read_frame(sample.frame_path)

    def generate(self, inputs: Sequence[Image.Image], seeds: Sequence[int]) -> list[Image.Image]:
        return list(inputs)
