"""AIS-IB: AIS in ImageBind's joint embedding space. The paper's results section draws AIS on
both Wav2CLIP and ImageBind; this is the ImageBind side: the win rate of a generated image's
own audio window against the other samples' windows, ImageBind huge vision against audio.
"""

from __future__ import annotations

from audiobench.features import FeatureKind
from audiobench.metrics.plugin import WinRate


class AISImageBind(WinRate):
    name = "ais-ib"
    label = "AIS-IB"
    description = "audio-image similarity in ImageBind's joint space (vision vs audio win rate)"
    inputs = {
        "generated": (FeatureKind("imagebind_vision", "image"),),
        "audio": (FeatureKind("imagebind_audio", "audio"),),
    }
    columns = ("ais_ib_win",)
    score_column = "ais_ib_win"
    notes = {"audio": "the evaluation window of the dataset index (audio_start-audio_end)"}
