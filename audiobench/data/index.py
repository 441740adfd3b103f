"""The dataset directory every method and metric reads.

A dataset is a directory holding `index.parquet` (one row per sample), the 16 kHz mono audio
and the reference frames. Paths in the index are relative to the directory, so a dataset can be
moved or copied as a whole. `audiobench data demo` and `audiobench data prepare` write this
format; nothing else in audiobench needs to know how a dataset was made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audiobench.concurrency import thread_map
from audiobench.errors import AudiobenchError, SampleError
from audiobench.store import (
    SAMPLE_ID,
    atomic_write_parquet,
    file_sha256,
    hashes_digest,
    make_directory,
)

INDEX_FILE = "index.parquet"
SAMPLE_RATE = 16_000
INDEX_COLUMNS = ("id", "label", "split", "audio", "audio_start", "audio_end", "frame")


@dataclass(frozen=True)
class Sample:
    """One clip: its label, the audio window methods hear and the frame metrics compare against."""

    id: str
    label: str
    split: str
    audio_path: Path
    audio_start: float
    audio_end: float
    frame_path: Path

    def read_audio(self) -> np.ndarray:
        """The evaluation window of the clip as float32 mono samples at 16 kHz."""
        return read_audio_window(self.audio_path, self.audio_start, self.audio_end)


def write_index(data_dir: Path, rows: Iterable[dict]) -> Path:
    """Write the index table; `rows` hold `INDEX_COLUMNS` (paths relative to `data_dir`) and
    possibly more columns, which are kept after them."""
    table = pd.DataFrame(list(rows))
    extra = [column for column in table.columns if column not in INDEX_COLUMNS]
    table = table.reindex(columns=[*INDEX_COLUMNS, *extra])
    path = make_directory(data_dir) / INDEX_FILE
    atomic_write_parquet(path, table)
    return path


def index_sha256(data_dir: Path) -> str:
    """Content hash of the index: runs record it so results name the exact sample list."""
    return hashlib.sha256((Path(data_dir) / INDEX_FILE).read_bytes()).hexdigest()


def input_hashes(samples: Sequence[Sample]) -> dict[str, str]:
    """What each sample is, as one sha256: id, label, split, audio window and the bytes of its
    audio and frame files (a missing file hashes as missing). Runs record them, so an audio
    file or frame swapped after its image was made is noticed, not silently scored."""
    audio = thread_map(_sha256_or_missing, [sample.audio_path for sample in samples])
    frames = thread_map(_sha256_or_missing, [sample.frame_path for sample in samples])
    hashes = {}
    for sample, audio_hash, frame_hash in zip(samples, audio, frames, strict=True):
        fields = [sample.id, sample.label, sample.split, sample.audio_start, sample.audio_end]
        text = json.dumps([*fields, audio_hash, frame_hash])
        hashes[sample.id] = hashlib.sha256(text.encode()).hexdigest()
    return hashes


def _sha256_or_missing(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return "missing"


def dataset_identity(data_dir: Path, hashes: dict[str, str]) -> dict[str, str]:
    """What a run records about its dataset: the index's hash and one digest of its samples'
    `input_hashes`; `evaluate` and `verify` compare both with the dataset as it is now."""
    return {"dataset_sha256": index_sha256(data_dir), "inputs_sha256": hashes_digest(hashes)}


def load_index(data_dir: Path, split: str | None = None) -> list[Sample]:
    """Read the samples of a dataset directory, optionally of one split, in index order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise AudiobenchError(f"data directory {data_dir} does not exist")
    index_path = data_dir / INDEX_FILE
    if not index_path.is_file():
        raise AudiobenchError(
            f"{data_dir} has no {INDEX_FILE}; make a dataset with `audiobench data demo` "
            "or `audiobench data prepare`"
        )
    try:
        table = pd.read_parquet(index_path)
    except Exception as error:  # pyarrow raises several unrelated types for a damaged file
        raise AudiobenchError(f"{index_path} is not a readable Parquet table: {error}") from error
    missing = [column for column in INDEX_COLUMNS if column not in table.columns]
    if missing:
        raise AudiobenchError(f"{index_path} lacks the columns {', '.join(missing)}")
    bad_ids = [str(i) for i in table["id"] if not SAMPLE_ID.fullmatch(str(i))]
    if bad_ids:
        raise AudiobenchError(
            f"{index_path} has ids that are not usable as file names (letters, digits, '_', "
            f"'-', '.', not starting with '.'): {', '.join(map(repr, bad_ids[:5]))}"
        )
    duplicated = table["id"][table["id"].duplicated()].unique().tolist()
    if duplicated:
        raise AudiobenchError(
            f"{index_path} has duplicated sample ids: {', '.join(map(str, duplicated[:5]))}"
        )
    if split is not None:
        splits = sorted(table["split"].unique().tolist())
        table = table[table["split"] == split]
        if table.empty:
            raise AudiobenchError(
                f"{index_path} has no samples in split {split!r} (splits present: "
                f"{', '.join(splits) or 'none'})"
            )
    if table.empty:
        raise AudiobenchError(f"{index_path} has no samples")
    return [_sample_from_row(index_path, row) for row in table.itertuples(index=False)]


def frame_policy(data_dir: Path, split: str) -> str:
    """How the split's reference frames were chosen (the index's `frame_select` column:
    "centre", "clip", "synthetic"), "+"-joined if mixed, or "unrecorded" for older datasets."""
    table = pd.read_parquet(Path(data_dir) / INDEX_FILE)
    if "frame_select" not in table.columns:
        return "unrecorded"
    policies = table.loc[table["split"] == split, "frame_select"].astype(str).unique()
    return "+".join(sorted(policies)) or "unrecorded"


def _sample_from_row(index_path: Path, row) -> Sample:
    return Sample(
        id=str(row.id),
        label=str(row.label),
        split=str(row.split),
        audio_path=_inside(index_path, row.id, row.audio),
        audio_start=float(row.audio_start),
        audio_end=float(row.audio_end),
        frame_path=_inside(index_path, row.id, row.frame),
    )


def _inside(index_path: Path, sample_id: str, relative: str) -> Path:
    """Resolve an index path, refusing any that would leave the dataset directory (an absolute
    path, "..", or a symlink out): an index may come from anyone, the files it names may not."""
    if not isinstance(relative, str) or not relative:
        raise AudiobenchError(f"{index_path}: sample {sample_id} has no file path ({relative!r})")
    root = index_path.parent.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise AudiobenchError(
            f"{index_path}: sample {sample_id}'s path {relative!r} points outside the dataset "
            "directory"
        )
    return path


def read_audio_window(path: Path, start: float, end: float) -> np.ndarray:
    """Read [start, end) seconds of a 16 kHz mono wav, with an error naming the file if unusable."""
    import soundfile

    if not path.is_file():
        raise SampleError(f"{path}: audio file missing")
    try:
        info = soundfile.info(str(path))
        if info.samplerate != SAMPLE_RATE:
            raise SampleError(f"{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE}")
        first, last = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        if info.frames < last:
            raise SampleError(
                f"{path}: {info.frames / SAMPLE_RATE:.2f} s long, shorter than the window "
                f"{start:g}-{end:g} s"
            )
        audio, _ = soundfile.read(
            str(path), start=first, stop=last, dtype="float32", always_2d=True
        )
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise SampleError(f"{path}: unreadable audio ({error})") from error
    if audio.shape[1] != 1:
        raise SampleError(f"{path}: {audio.shape[1]} channels, expected mono")
    audio = audio[:, 0]
    if not np.isfinite(audio).all():
        raise SampleError(f"{path}: audio contains NaN or infinite samples")
    return audio


def read_frame(path: Path):
    """Open an image as RGB, with an error naming the file if it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise SampleError(f"{path}: image file missing")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise SampleError(f"{path}: unreadable image ({error})") from error
