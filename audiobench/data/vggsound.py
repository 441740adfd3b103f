"""`audiobench data prepare vggsound`: a local VGGSound copy into audiobench's dataset format.

For each clip of the list: find its files (the official `<ytid>_<start:06d>.mp4` or the
AudioToken authors' `<ytid>_<start_ms>_<end_ms>.{mp4,wav}`), read 16 kHz mono audio (from the
wav when there is one, else from the mp4's audio track), decode candidate frames at the centre
of every second, and keep:

- the **evaluation window**: the centre 5 s of the clip ([2.5, 7.5] s of a 10 s clip), and the
  **reference frame**: the decoded frame nearest the centre of that window (`--frame-select
  centre`, the default). CLIP ViT-L/14 also scores IIS and AIC, so a reference frame chosen by
  CLIP against the label would favour label-conditioned methods; the paper uses CLIP-best
  frames for training only. `--frame-select clip` picks, of the frames inside the window, the
  one CLIP scores highest against "a photo of a {label}". The policy is recorded per sample
  in the index's `frame_select` column, and `evaluate` records it in `metrics.json`;
- for training clips, the **training crops**: the 5 s windows starting at every whole second
  (0-5, 1-6, ..., 5-10 s of a 10 s clip) with, inside each, the frame CLIP scores highest
  against the label (`--train-frame-select clip`, the paper's training frames) or the one
  nearest the window's centre (`centre`).

Clips that cannot be used go to `skipped.csv` with a reason; the rest are prepared. Progress is
journalled per clip (`prepare.jsonl`), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from audiobench.data.index import SAMPLE_RATE, write_index
from audiobench.data.media import SILENCE_PEAK, read_frames, read_video_audio, read_wav
from audiobench.errors import AudiobenchError, SampleError
from audiobench.progress import progress_bar
from audiobench.store import (
    atomic_write_bytes,
    atomic_write_parquet,
    make_directory,
    png_bytes,
    wav_bytes,
)

WINDOW_SECONDS = 5.0
CLIP_SECONDS = 10.0  # VGGSound clips are nominally 10 s (decoded ones run a few ms longer)
PROMPT = "a photo of a {label}"
JOURNAL = "prepare.jsonl"
TRAIN_CROPS = "train_crops.parquet"
SKIPPED = "skipped.csv"
# YouTube ids are 11 characters of [A-Za-z0-9_-] (and may start with "-"). Clip ids become file
# names, so anything else (a "/" or ".." from a tampered list) is refused rather than written.
_YTID = r"[A-Za-z0-9_\-]{11}"
_OFFICIAL_NAME = re.compile(rf"(?P<ytid>{_YTID})_(?P<start>[0-9]{{6}})\.(?P<ext>mp4|wav)")
_AUTHORS_NAME = re.compile(
    rf"(?P<ytid>{_YTID})_(?P<start_ms>[0-9]+)_(?P<end_ms>[0-9]+)\.(?P<ext>mp4|wav)"
)

FrameScorer = Callable[[Sequence[Image.Image], str], Sequence[float]]


@dataclass(frozen=True)
class ClipEntry:
    """One row of a VGGSound list."""

    ytid: str
    start: int
    label: str
    split: str

    @property
    def id(self) -> str:
        return f"{self.ytid}_{self.start:06d}"


def read_clip_list(path: Path) -> list[ClipEntry]:
    """Read the official `youtube_id,start_seconds,label,split` CSV or the test list
    `<ytid>_<start:06d>.mp4,label` (both headerless; labels may contain quoted commas)."""
    entries = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.reader(handle, strict=True), start=1):
                if line == 1 and len(row) == 4 and not row[1].strip().isdigit():
                    continue  # a header line (the official file has none, copies often do)
                if row:
                    entries.append(_entry(row, path, line))
    except FileNotFoundError as error:
        raise AudiobenchError(f"clip list {path} does not exist") from error
    except (csv.Error, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not a readable CSV: {error}") from error
    if not entries:
        raise AudiobenchError(f"{path} lists no clips")
    return entries


def _entry(row: list[str], path: Path, line: int) -> ClipEntry:
    if len(row) == 4:
        ytid, start, label, split = (cell.strip() for cell in row)
        # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses
        well_formed = re.fullmatch(_YTID, ytid) and re.fullmatch("[0-9]+", start)
        if well_formed and label and split in ("train", "test"):
            return ClipEntry(ytid, int(start), label, split)
    elif len(row) == 2:
        match = _OFFICIAL_NAME.fullmatch(row[0].strip())
        if match and match["ext"] == "mp4" and row[1].strip():
            return ClipEntry(match["ytid"], int(match["start"]), row[1].strip(), "test")
    raise AudiobenchError(
        f"{path}, line {line}: expected `youtube_id,start_seconds,label,train|test` or "
        f"`<ytid>_<start:06d>.mp4,label`, got {','.join(row)!r}"
    )


def read_classes(path: Path) -> dict[str, str]:
    """The class list `label,count,supercategory` (headerless) as {label: supercategory}.

    A label listed twice is refused: which supercategory it belongs to would be a guess."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle, strict=True) if row]
    except FileNotFoundError as error:
        raise AudiobenchError(f"class list {path} does not exist") from error
    except (csv.Error, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not a readable CSV: {error}") from error
    classes: dict[str, str] = {}
    for line, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise AudiobenchError(f"{path}, line {line}: expected label,count,supercategory")
        if row[0] in classes:
            raise AudiobenchError(f"{path}, line {line}: class {row[0]!r} is listed twice")
        classes[row[0]] = row[2]
    return classes


def read_filter(path: Path) -> set[str]:
    """Ids (YouTube ids or clip ids) listed one per line, as in the authors' filter files."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise AudiobenchError(f"filter file {path} does not exist") from error
    except UnicodeDecodeError as error:
        raise AudiobenchError(f"filter file {path} is not UTF-8 text: {error}") from error
    return {line.strip() for line in text.splitlines() if line.strip()}


def index_media(folder: Path | None) -> dict[tuple[str, int, str], Path]:
    """(ytid, start second, extension) -> file, for both naming schemes, from one listing."""
    found: dict[tuple[str, int, str], Path] = {}
    if folder is None:
        return found
    if not Path(folder).is_dir():
        raise AudiobenchError(f"media folder {folder} does not exist")
    for entry in os.scandir(folder):
        official, authors = (
            _OFFICIAL_NAME.fullmatch(entry.name),
            _AUTHORS_NAME.fullmatch(entry.name),
        )
        if official:
            found[official["ytid"], int(official["start"]), official["ext"]] = Path(entry.path)
        elif authors and int(authors["start_ms"]) % 1000 == 0:
            key = (authors["ytid"], int(authors["start_ms"]) // 1000, authors["ext"])
            found[key] = Path(entry.path)
    return found


@dataclass
class DecodedClip:
    """What a worker reads from a clip's files: its audio and candidate frames."""

    id: str
    audio: np.ndarray  # float32, 16 kHz, mono
    frame_times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # RGB uint8, H x W x 3


def decode_clip(clip_id: str, video: Path | None, audio: Path | None) -> DecodedClip:
    """Read a clip's audio and one frame per second; raises SampleError(reason: detail)."""
    if audio is not None:
        samples = read_wav(audio)
    elif video is not None:
        samples = read_video_audio(video)
    else:
        raise SampleError("missing: no video or audio file found")
    duration = samples.size / SAMPLE_RATE
    if duration < WINDOW_SECONDS:
        raise SampleError(f"too-short: {duration:.2f} s of audio, {WINDOW_SECONDS:g} s needed")
    if not np.isfinite(samples).all():
        raise SampleError("unreadable: audio contains NaN or infinite samples")
    if np.abs(samples).max() < SILENCE_PEAK:
        raise SampleError("silent: the audio is silent (peak below -80 dBFS)")
    if video is None:
        raise SampleError("missing: no video file for the reference frame")
    times, frames = read_frames(video, [second + 0.5 for second in range(int(duration))])
    return DecodedClip(clip_id, samples, times, frames)


def evaluation_window(duration: float) -> tuple[float, float]:
    """The centre 5 s of the clip's nominal 10 s ([2.5, 7.5] s), or of a shorter clip: the
    audio every method hears at evaluation."""
    start = round((min(duration, CLIP_SECONDS) - WINDOW_SECONDS) / 2, 3)
    return start, start + WINDOW_SECONDS


def training_windows(duration: float) -> list[tuple[float, float]]:
    """5 s windows starting at every whole second that fits: the fixed training crops."""
    return [(float(k), k + WINDOW_SECONDS) for k in range(int(duration - WINDOW_SECONDS) + 1)]


def best_frame(times: Sequence[float], scores: Sequence[float], window: tuple[float, float]) -> int:
    """Index of the highest-scoring frame inside the window (the earliest among equals)."""
    inside = [i for i, time in enumerate(times) if window[0] <= time < window[1]]
    if not inside:
        raise SampleError(f"unreadable: no decoded frame inside {window[0]:g}-{window[1]:g} s")
    return max(inside, key=lambda i: (scores[i], -i))


def middle_scores(times: Sequence[float], window: tuple[float, float]) -> list[float]:
    """Scores that make `best_frame` pick the frame nearest the centre of `window`."""
    centre = (window[0] + window[1]) / 2
    return [-abs(time - centre) for time in times]


FRAME_POLICIES = ("centre", "clip")


@dataclass
class PrepareSettings:
    """Everything `audiobench data prepare vggsound` needs."""

    clip_list: Path
    video_dir: Path
    out: Path
    audio_dir: Path | None = None
    split: str = "all"
    filters: Sequence[Path] = ()
    frame_select: str = "centre"  # reference frames: "centre" of the window or "clip"-best
    train_frame_select: str = "clip"  # training crops' frames: "clip"-best or "centre"
    workers: int = 1


@dataclass(frozen=True)
class PrepareSummary:
    prepared: int
    skipped: dict[str, int]  # reason -> count
    out: Path


def prepare_vggsound(settings: PrepareSettings, scorer: FrameScorer | None) -> PrepareSummary:
    """Prepare every listed clip (resuming a previous run) and write the dataset files.

    `scorer(frames, prompt)` scores candidate frames where a policy is "clip"; it may be None
    when none is.
    """
    if settings.split not in ("train", "test", "all"):
        raise AudiobenchError(f"--split must be train, test or all, not {settings.split!r}")
    for option, policy in (
        ("--frame-select", settings.frame_select),
        ("--train-frame-select", settings.train_frame_select),
    ):
        if policy not in FRAME_POLICIES:
            raise AudiobenchError(f"{option} must be centre or clip, not {policy!r}")
    entries = [e for e in read_clip_list(settings.clip_list) if settings.split in ("all", e.split)]
    if scorer is None and needs_scorer(settings):
        raise AudiobenchError("a 'clip' frame policy needs a CLIP frame scorer")
    out = make_directory(settings.out)
    for folder in ("audio", "frames", "train_frames"):
        make_directory(out / folder)
    journal = _read_journal(out / JOURNAL)
    outcomes = {clip_id: record for clip_id, record in journal.items() if record["status"] == "ok"}
    todo = _screen(entries, settings, outcomes)
    videos = index_media(settings.video_dir)
    audios = index_media(settings.audio_dir or settings.video_dir)
    jobs = [
        (
            entry,
            videos.get((entry.ytid, entry.start, "mp4")),
            audios.get((entry.ytid, entry.start, "wav")),
        )
        for entry, reason in todo
        if not reason
    ]
    with (
        open(out / JOURNAL, "a", encoding="utf-8") as log,
        progress_bar(len(entries), "preparing clips") as advance,
    ):
        advance(len(entries) - len(todo))
        for entry, reason in todo:
            if reason:
                _log(log, outcomes, {"id": entry.id, "status": "skipped", "reason": reason})
                advance(1)
        by_id = {entry.id: entry for entry, _, _ in jobs}
        for clip_id, decoded in _decode_all(jobs, settings.workers):
            entry = by_id[clip_id]
            try:
                record = _write_clip(out, entry, decoded, settings, scorer)
            except SampleError as error:
                record = {"id": entry.id, "status": "skipped", "reason": str(error)}
            _log(log, outcomes, record)
            advance(1)
    return _finish(out, entries, outcomes)


def _screen(
    entries: list[ClipEntry], settings: PrepareSettings, done: dict[str, dict]
) -> list[tuple[ClipEntry, str | None]]:
    """Clips still to do, each with the reason it is skipped before decoding (or None)."""
    dropped = {path.name: read_filter(path) for path in map(Path, settings.filters)}
    seen: set[str] = set()
    todo = []
    for entry in entries:
        if entry.id in done:
            seen.add(entry.id)
            continue
        listed = [name for name, ids in dropped.items() if entry.ytid in ids or entry.id in ids]
        reason = None
        if entry.id in seen:
            reason = "duplicate: the clip is listed more than once"
        elif listed:
            reason = f"filtered: listed in {', '.join(listed)}"
        seen.add(entry.id)
        todo.append((entry, reason))
    return todo


def _decode_all(
    jobs: list[tuple[ClipEntry, Path | None, Path | None]], workers: int
) -> Iterator[tuple[str, DecodedClip | SampleError]]:
    """Decode clips in a process pool (in order), at most two per worker in flight."""
    if workers <= 1:
        for entry, video, audio in jobs:
            yield entry.id, _decode_or_error(entry.id, video, audio)
        return
    # spawn, not fork: the parent holds torch and thread pools, which a fork can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: list[tuple[str, Future]] = []
        for entry, video, audio in jobs:
            pending.append((entry.id, pool.submit(_decode_or_error, entry.id, video, audio)))
            if len(pending) >= 2 * workers:
                clip_id, future = pending.pop(0)
                yield clip_id, future.result()
        for clip_id, future in pending:
            yield clip_id, future.result()


def _decode_or_error(clip_id: str, video: Path | None, audio: Path | None):
    try:
        return decode_clip(clip_id, video, audio)
    except SampleError as error:
        return error


def _write_clip(
    out: Path,
    entry: ClipEntry,
    decoded: DecodedClip | SampleError,
    settings: PrepareSettings,
    scorer: FrameScorer | None,
) -> dict:
    if isinstance(decoded, SampleError):
        raise decoded
    duration = decoded.audio.size / SAMPLE_RATE
    images = [Image.fromarray(frame) for frame in decoded.frames]
    clip_scores: list[float] | None = None

    def choose(policy: str, window: tuple[float, float]) -> int:
        nonlocal clip_scores
        if policy == "centre":
            return best_frame(
                decoded.frame_times, middle_scores(decoded.frame_times, window), window
            )
        if clip_scores is None:  # every frame scored once per clip, for all its windows
            assert scorer is not None  # prepare_vggsound refuses a "clip" policy without one
            clip_scores = list(scorer(images, PROMPT.format(label=entry.label)))
        return best_frame(decoded.frame_times, clip_scores, window)

    window = evaluation_window(duration)
    reference = choose(settings.frame_select, window)
    atomic_write_bytes(out / "audio" / f"{entry.id}.wav", wav_bytes(decoded.audio, SAMPLE_RATE))
    atomic_write_bytes(out / "frames" / f"{entry.id}.png", png_bytes(images[reference]))
    row = {
        "id": entry.id,
        "label": entry.label,
        "split": entry.split,
        "audio": f"audio/{entry.id}.wav",
        "audio_start": window[0],
        "audio_end": window[1],
        "frame": f"frames/{entry.id}.png",
        "frame_time": decoded.frame_times[reference],
        "frame_select": settings.frame_select,
    }
    crops = []
    if entry.split == "train":
        for start, end in training_windows(duration):
            chosen = choose(settings.train_frame_select, (start, end))
            name = f"train_frames/{entry.id}_{round(decoded.frame_times[chosen] * 1000)}.png"
            if not (out / name).is_file():
                atomic_write_bytes(out / name, png_bytes(images[chosen]))
            crops.append({"id": entry.id, "audio_start": start, "audio_end": end, "frame": name})
    return {"id": entry.id, "status": "ok", "row": row, "crops": crops}


def needs_scorer(settings: PrepareSettings) -> bool:
    """Whether preparing these clips asks CLIP to score frames."""
    return settings.frame_select == "clip" or (
        settings.train_frame_select == "clip" and settings.split != "test"
    )


def _log(log, outcomes: dict[str, dict], record: dict) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()
    os.fsync(log.fileno())
    outcomes[record["id"]] = record


def _read_journal(path: Path) -> dict[str, dict]:
    """Per-clip outcomes of earlier runs (the last line per clip wins; a torn line is ignored)."""
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line being written when a previous run was killed
            records[record["id"]] = record
    return records


def _finish(out: Path, entries: list[ClipEntry], outcomes: dict[str, dict]) -> PrepareSummary:
    order = list(dict.fromkeys(entry.id for entry in entries))
    prepared = [outcomes[i] for i in order if outcomes[i]["status"] == "ok"]
    skipped = [outcomes[i] for i in order if outcomes[i]["status"] == "skipped"]
    rows = [record["row"] for record in prepared]
    if rows:
        write_index(out, rows)
    crops = [crop for record in prepared for crop in record["crops"]]
    columns = ["id", "audio_start", "audio_end", "frame"]
    atomic_write_parquet(out / TRAIN_CROPS, pd.DataFrame(crops, columns=columns))
    reasons = [(r["id"], *r["reason"].split(": ", 1)) for r in skipped]
    listings = Counter(entry.id for entry in entries)
    reasons += [
        (clip_id, "duplicate", f"listed {count} times; prepared or skipped once")
        for clip_id, count in listings.items()
        if count > 1
    ]
    table = pd.DataFrame(reasons, columns=["id", "reason", "detail"])
    atomic_write_bytes(out / SKIPPED, table.to_csv(index=False).encode())
    return PrepareSummary(len(rows), dict(Counter(reason for _, reason, _ in reasons)), out)


def clip_scorer(zoo) -> FrameScorer:
    """Score frames by CLIP cosine similarity to the prompt (the zoo's `clip_l14`, loaded on
    first use so that a run with nothing to decode loads no model)."""

    def score(frames: Iterable[Image.Image], prompt: str) -> list[float]:
        encoder = zoo.load("clip_l14")
        images = encoder.embed_images(list(frames))
        text = encoder.embed_texts([prompt])[0]
        return (images @ text).tolist()

    return score
