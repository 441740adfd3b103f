"""`audiobench data prepare speakers`: folders of speaker recordings as an audiobench dataset.

The input is a folder per speaker, `ROOT/<speaker name>/`, holding recordings (`.wav` or
`.mp4`) and optionally pictures (`.png`, `.jpg`). Every recording is cut into consecutive
clips of `--clip-seconds` (a remainder shorter than that is dropped); each clip becomes one
sample whose label is the speaker's name and whose reference frame is the video frame at the
clip's centre (a face, for the talking-head videos of the paper's Figure 4). Clips of a
recording without a video track take the speaker's pictures in turn; a speaker with neither
is skipped. Each training clip is one training crop (`train_crops.parquet`): the whole clip.

The split is by recording, never by clip, so no recording has clips in both splits: of a
speaker's n usable recordings (those giving at least one clip), max(1, round(n / 5)) go to
`test` when n >= 2 (none when n = 1), chosen by the SHA-256 of their file names, which is
deterministic and independent of how files are numbered. Preparation is fast (no model
runs), so it is not journalled: a rerun redoes it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from audiobench.data.index import SAMPLE_RATE, read_frame, write_index
from audiobench.data.media import SILENCE_PEAK, read_frames, read_video_audio, read_wav
from audiobench.data.vggsound import TRAIN_CROPS
from audiobench.errors import AudiobenchError, SampleError
from audiobench.store import (
    atomic_write_bytes,
    atomic_write_parquet,
    make_directory,
    png_bytes,
    wav_bytes,
)

RECORDING_SUFFIXES = (".wav", ".mp4")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_FRACTION = 0.2
SKIPPED = "skipped.csv"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class SpeakerSummary:
    speakers: int
    samples: dict[str, int]  # split -> count
    skipped: dict[str, int]  # reason -> count
    out: Path


def prepare_speakers(root: Path, out: Path, clip_seconds: float = 5.0) -> SpeakerSummary:
    """Cut every speaker's recordings into clips, split them and write the dataset to `out`."""
    root = Path(root)
    if not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise AudiobenchError(f"--clip-seconds must be positive, got {clip_seconds:g}")
    speakers = _speaker_folders(root)
    for kind in ("audio", "frames"):
        make_directory(Path(out) / kind)
    rows: list[dict] = []
    skipped: list[dict] = []
    for folder in speakers:
        pictures = _files(folder, PICTURE_SUFFIXES)
        clips: dict[Path, list[dict]] = {}
        for path in _files(folder, RECORDING_SUFFIXES):
            try:
                clips[path] = _clips(root, out, folder.name, path, clip_seconds, pictures, skipped)
            except SampleError as error:
                skipped.append(_skip(root, path, str(error)))
        splits = assign_splits([path for path, made in clips.items() if made])
        rows += [{**row, "split": splits[path]} for path, made in clips.items() for row in made]
    if not rows:
        raise AudiobenchError(
            f"no usable clip in {root} ({len(skipped)} recordings or clips skipped, "
            f"see {out / SKIPPED})"
        )
    _check_unique([row["id"] for row in rows], root)
    write_index(out, rows)
    atomic_write_parquet(out / TRAIN_CROPS, _training_crops(rows))
    table = pd.DataFrame(skipped, columns=["source", "clip_start", "reason", "detail"])
    atomic_write_bytes(out / SKIPPED, table.to_csv(index=False).encode())
    return SpeakerSummary(
        speakers=len({row["label"] for row in rows}),
        samples=dict(Counter(row["split"] for row in rows)),
        skipped=dict(Counter(item["reason"] for item in skipped)),
        out=out,
    )


def _training_crops(rows: list[dict]) -> pd.DataFrame:
    """Each training clip is its own single crop: the whole clip with its reference frame."""
    crops = [
        {key: row[key] for key in ("id", "audio_start", "audio_end", "frame")}
        for row in rows
        if row["split"] == "train"
    ]
    return pd.DataFrame(crops, columns=["id", "audio_start", "audio_end", "frame"])


def _speaker_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise AudiobenchError(f"speaker folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise AudiobenchError(
            f"{root} holds {len(folders)} speaker folders; the study needs at least 2 "
            "(one folder per speaker, named after the speaker)"
        )
    return folders


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def assign_splits(recordings: list[Path]) -> dict[Path, str]:
    """Split one speaker's usable recordings into train and test (see the module docstring)."""
    n_test = max(1, round(len(recordings) * TEST_FRACTION)) if len(recordings) >= 2 else 0
    ranked = sorted(recordings, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    test = set(ranked[:n_test])
    return {path: "test" if path in test else "train" for path in recordings}


def _clips(
    root: Path,
    out: Path,
    speaker: str,
    path: Path,
    clip_seconds: float,
    pictures: list[Path],
    skipped: list[dict],
) -> list[dict]:
    is_video = path.suffix.lower() == ".mp4"
    audio = read_video_audio(path) if is_video else read_wav(path)
    if not np.isfinite(audio).all():
        raise SampleError("unreadable: audio contains NaN or infinite samples")
    width = round(clip_seconds * SAMPLE_RATE)
    count = audio.size // width
    if count == 0:
        raise SampleError(
            f"too-short: {audio.size / SAMPLE_RATE:.2f} s of audio, {clip_seconds:g} s needed"
        )
    frames = _frames(path, is_video, count, clip_seconds, pictures)
    rows = []
    for k in range(count):
        clip = audio[k * width : (k + 1) * width]
        if np.abs(clip).max() < SILENCE_PEAK:
            skipped.append(_skip(root, path, "silent: the clip is silent", k * clip_seconds))
            continue
        sample_id = f"{_slug(speaker)}-{_slug(path.name)}-{k:03d}"
        atomic_write_bytes(out / "audio" / f"{sample_id}.wav", wav_bytes(clip, SAMPLE_RATE))
        atomic_write_bytes(out / "frames" / f"{sample_id}.png", png_bytes(frames[k]))
        rows.append(
            {
                "id": sample_id,
                "label": speaker,
                "audio": f"audio/{sample_id}.wav",
                "audio_start": 0.0,
                "audio_end": width / SAMPLE_RATE,
                "frame": f"frames/{sample_id}.png",
                "source": path.relative_to(root).as_posix(),
                "clip_start": k * clip_seconds,
            }
        )
    return rows


def _frames(
    path: Path, is_video: bool, count: int, clip_seconds: float, pictures: list[Path]
) -> list[Image.Image]:
    """The reference frame of each clip: the video frame at its centre, else a picture."""
    if is_video:
        try:
            times = [(k + 0.5) * clip_seconds for k in range(count)]
            found, frames = read_frames(path, times)
            return [Image.fromarray(frames[_nearest(found, time)]) for time in times]
        except SampleError as error:
            if not pictures or not str(error).startswith("missing"):
                raise
    if not pictures:
        raise SampleError(
            f"missing: {path.name} has no video frames and the speaker's folder no picture"
        )
    return [_picture(pictures[k % len(pictures)]) for k in range(count)]


def _nearest(times: list[float], wanted: float) -> int:
    return min(range(len(times)), key=lambda i: abs(times[i] - wanted))


def _picture(path: Path) -> Image.Image:
    try:
        return read_frame(path)
    except SampleError as error:
        raise SampleError(f"unreadable: picture {error}") from error


def _slug(name: str) -> str:
    """A file name fragment usable in a sample id (which must not start with a dot)."""
    return _UNSAFE.sub("_", name).lstrip(".") or "_"


def _check_unique(ids: list[str], root: Path) -> None:
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise AudiobenchError(
            f"speaker or file names in {root} map to the same sample id "
            f"({', '.join(repeated[:3])}): rename them apart"
        )


def _skip(root: Path, source: Path, error: str, clip_start: float | None = None) -> dict:
    reason, _, detail = error.partition(": ")
    return {
        "source": source.relative_to(root).as_posix(),
        "clip_start": clip_start,
        "reason": reason,
        "detail": detail,
    }
