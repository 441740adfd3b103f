"""IIS, image-image similarity (Table 1): is a generated image closer, in CLIP ViT-L/14's space,
to its own sample's reference frame than to the other samples' frames? A win rate in percent."""

from __future__ import annotations

from audiobench.features import FeatureKind
from audiobench.metrics.plugin import WinRate

IMAGE = FeatureKind("clip_l14", "image")


class IIS(WinRate):
    name = "iis"
    label = "IIS"
    description = "image-image similarity: win rate of an image's own reference frame (CLIP L/14)"
    inputs = {"generated": (IMAGE,), "frames": (IMAGE,)}
    columns = ("iis_win",)
    score_column = "iis_win"
    paper_column = 3
    notes = {"reference": "dataset reference frames"}
