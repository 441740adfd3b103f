"""AIS, audio-image similarity (Table 1): is a generated image closer, in Wav2CLIP's space, to
its own audio than to the other samples' audio? A win rate in percent; 50 is chance.

Wav2CLIP was trained into CLIP ViT-B/32's image space, so the image side is CLIP ViT-B/32.
"""

from __future__ import annotations

from audiobench.features import FeatureKind
from audiobench.metrics.plugin import WinRate


class AIS(WinRate):
    name = "ais"
    label = "AIS"
    description = "audio-image similarity: win rate of an image's own audio (Wav2CLIP/CLIP B/32)"
    inputs = {
        "generated": (FeatureKind("clip_b32", "image"),),
        "audio": (FeatureKind("wav2clip", "audio"),),
    }
    columns = ("ais_win",)
    score_column = "ais_win"
    paper_column = 2
    notes = {"audio": "the evaluation window of the dataset index (audio_start-audio_end)"}
