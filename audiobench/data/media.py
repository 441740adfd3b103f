"""Decoding of source media (wav, mp4) into 16 kHz mono audio and RGB frames.

The dataset preparers share these readers; every failure is a `SampleError` whose message
starts with a reason code (`unreadable`, `no-audio`, `missing`) that `skipped.csv` records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audiobench.data.index import SAMPLE_RATE
from audiobench.errors import SampleError

SILENCE_PEAK = 1e-4  # -80 dBFS: below this the whole clip counts as silent


def read_wav(path: Path) -> np.ndarray:
    """A whole audio file (any rate or channel count soundfile reads) as 16 kHz mono float32."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise SampleError(f"unreadable: audio file {path.name}: {error}") from error
    return _to_16k_mono(samples.T, rate)


def read_video_audio(path: Path) -> np.ndarray:
    """The first audio track of a video file as 16 kHz mono float32."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise SampleError(f"no-audio: {path.name} has no audio track")
            stream = container.streams.audio[0]
            chunks = [frame.to_ndarray() for frame in container.decode(stream)]
            rate = stream.rate
    except (av.error.FFmpegError, OSError) as error:
        raise SampleError(f"unreadable: video file {path.name}: {error}") from error
    if not chunks:
        raise SampleError(f"no-audio: {path.name} has an empty audio track")
    planar = [c if c.ndim == 2 and c.shape[0] <= 8 else c.reshape(-1, 1).T for c in chunks]
    return _to_16k_mono(np.concatenate(planar, axis=1).astype(np.float32), rate)


def _to_16k_mono(channels: np.ndarray, rate: int) -> np.ndarray:
    import torch
    import torchaudio

    mono = channels.mean(axis=0).astype(np.float32)
    if rate != SAMPLE_RATE:
        mono = torchaudio.functional.resample(torch.from_numpy(mono), rate, SAMPLE_RATE).numpy()
    return mono


def read_frames(path: Path, times: list[float]) -> tuple[list[float], list[np.ndarray]]:
    """The decoded frame nearest to each requested time (in seconds from the clip start)."""
    import av

    nearest: dict[float, tuple[float, Any]] = {}  # wanted time -> (distance, decoded frame)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SampleError(f"missing: {path.name} has no video track")
            for frame in container.decode(video=0):
                if frame.time is None:
                    continue
                for wanted in times:
                    distance = abs(frame.time - wanted)
                    if wanted not in nearest or distance < nearest[wanted][0]:
                        nearest[wanted] = (distance, frame)
            # converted once per wanted time: converting every nearer candidate costs ~100x more
            pixels = {t: frame.to_ndarray(format="rgb24") for t, (_, frame) in nearest.items()}
    except (av.error.FFmpegError, OSError) as error:
        raise SampleError(f"unreadable: video file {path.name}: {error}") from error
    if not nearest:
        raise SampleError(f"unreadable: no frame could be decoded from {path.name}")
    kept = sorted(nearest)
    return kept, [pixels[time] for time in kept]
