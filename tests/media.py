"""Synthetic recordings for tests: voices and mp4 files with an audio and a video track."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

from audiobench.data import SAMPLE_RATE
from tests.conftest import HANG_SECONDS


def voice(pitch: float, seconds: float, seed: int) -> np.ndarray:
    """A vowel-like voice: a glottal pulse train at `pitch` through two formant resonances,
    with syllable-rate amplitude modulation, so speakers differ as real ones do, in pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    jitter = 1 + 0.01 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = np.cumsum(pitch * jitter / SAMPLE_RATE)
    source = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 25))
    formants = sum(np.sin(2 * np.pi * f * t) for f in (pitch * 5, pitch * 11)) * 0.2
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)) ** 2
    signal = (source + formants * source) * envelope
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def write_mp4(
    path: Path, audio: np.ndarray, brightness_per_second: float = 20.0, with_audio: bool = True
) -> None:
    """A talking-head stand-in: frames whose brightness encodes the time, and the voice (or,
    `with_audio=False`, a video track alone, as long as the voice)."""
    seconds = audio.size / SAMPLE_RATE
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if with_audio else None
        for index in range(round(seconds * 5)):
            level = min(255, round(index / 5 * brightness_per_second))
            pixels = np.full((48, 64, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            for start in range(0, audio.size, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    audio[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                chunk.time_base = fractions.Fraction(1, SAMPLE_RATE)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())


def compile_latex(folder: Path, document: str) -> Path:
    """Compile a LaTeX document with pdflatex in `folder` (failing the test with the log's end
    when it does not compile); the PDF's path."""
    import subprocess

    (folder / "document.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "document.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    return folder / "document.pdf"
