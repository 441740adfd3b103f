"""Training crops: what a trainer sees of each clip.

Every clip has a fixed set of crops: the 5 s audio windows starting at each whole second (0-5,
1-6, ..., 5-10 s of a 10 s clip), each with the training frame taken inside the same window.
`data prepare vggsound` picks those frames by CLIP score and lists the crops in
`train_crops.parquet`; for a dataset without that file (the demo) every window uses the clip's
reference frame. A training step draws one crop per clip at random (seeded by the step),
which is the official loader's random 5 s crop at a one-second grid: the grid keeps the set of
crops finite, so features of every crop can be computed once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch
from PIL import Image

from audiobench.data.index import Sample, read_audio_window
from audiobench.data.vggsound import TRAIN_CROPS, training_windows


@dataclass(frozen=True)
class Crop:
    """One training view of a clip: an audio window and a frame from inside it."""

    sample: Sample
    audio_start: float
    audio_end: float
    frame_path: Path

    def read_audio(self) -> np.ndarray:
        return read_audio_window(self.sample.audio_path, self.audio_start, self.audio_end)


def clip_crops(data_dir: Path, samples: list[Sample]) -> dict[str, list[Crop]]:
    """The fixed crops of every sample, from `train_crops.parquet` or made from the clip."""
    listed = Path(data_dir) / TRAIN_CROPS
    table = pd.read_parquet(listed) if listed.is_file() else pd.DataFrame(columns=["id"])
    by_id = {key: rows for key, rows in table.groupby("id")}
    root = Path(data_dir).resolve()
    crops = {}
    for sample in samples:
        if sample.id in by_id:
            listed_crops = by_id[sample.id]
            crops[sample.id] = [
                Crop(sample, start, end, root / frame)
                for start, end, frame in zip(
                    listed_crops["audio_start"],
                    listed_crops["audio_end"],
                    listed_crops["frame"],
                    strict=True,
                )
            ]
        else:
            duration = soundfile.info(str(sample.audio_path)).duration
            crops[sample.id] = [
                Crop(sample, start, end, sample.frame_path)
                for start, end in training_windows(duration)
            ]
    return crops


def frame_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """The image resized to `size` = (width, height) (bicubic; the aspect ratio is not kept
    and nothing is cropped, as the official AudioToken loader does), scaled to [-1, 1]."""
    resized = image.resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(resized, dtype=np.float32)
    return torch.from_numpy(pixels / 127.5 - 1.0).permute(2, 0, 1)
