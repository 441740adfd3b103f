"""Data preparation (`audiobench data prepare vggsound`) against a plain per-clip loop.

    python -m audiobench.benchmarks data [--quick]

The clips are synthetic VGGSound-style mp4 files made on the fly (10 s of H.264 video and
44.1 kHz stereo AAC, official `<ytid>_<start:06d>.mp4` names, a headerless
`ytid,start,label,split` list), so the stage needs no download. Three ways prepare them, each in
its own process, timed without Python imports:

- reference: a plain loop that, per clip, decodes the audio track, resamples it to 16 kHz mono,
  decodes the frame that `--frame-select centre` picks and writes both;
- `prepare_vggsound` with 1 worker and with 2 workers (`centre` frame policies, no CLIP
  scoring, so that decoding is what is measured).

The check: both worker counts write byte-identical datasets, and every reference wav and frame
is byte-identical to the prepared one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from audiobench.benchmarks.common import Measurement, in_own_process, stage_result, timed_call

from audiobench.data import SAMPLE_RATE
from audiobench.data.vggsound import (
    PrepareSettings,
    best_frame,
    evaluation_window,
    middle_scores,
    prepare_vggsound,
    read_clip_list,
)
from audiobench.store import atomic_write_bytes, png_bytes, wav_bytes

FPS, AUDIO_RATE, SECONDS = 30, 44_100, 10
IMPORTS = ("av", "torchaudio", "audiobench.data.vggsound")


def write_clip(path: Path, seed: int, size: tuple[int, int]) -> None:
    """A 10 s mp4 with a moving picture and a noisy chord: cheap to make, real to decode."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        base = _picture(size, seed)
        for index in range(FPS * SECONDS):
            shift = (np.array([3, 3, 1]) * index % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(base + shift, format="rgb24")
            container.mux(video.encode(frame))
        chunk = AUDIO_RATE // 10
        for start in range(0, AUDIO_RATE * SECONDS, chunk):
            samples = _sound(start, chunk, rng)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            container.mux(audio.encode(frame))
        container.mux(video.encode())
        container.mux(audio.encode())


def _picture(size: tuple[int, int], seed: int) -> np.ndarray:
    """Diagonal colour ramps; shifting them frame by frame makes the motion."""
    columns, rows = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    channels = [columns + 40 * k + seed for k in range(2)] + [rows * 2]
    return (np.stack(channels, axis=-1) % 256).astype(np.uint8)


def _sound(start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    time = (start + np.arange(count)) / AUDIO_RATE
    tone = 0.3 * np.sin(2 * np.pi * 440 * time) + 0.05 * rng.standard_normal(count)
    return np.stack([tone, 0.8 * tone]).astype(np.float32)


def make_clips(root: Path, count: int, size: tuple[int, int]) -> Path:
    """`count` clips in `root / "clips"` (copies of one: the work per clip is what matters, and
    encoding is slow) and their list `root / "list.csv"`."""
    (root / "clips").mkdir(parents=True)
    names = [f"synth{index:06d}" for index in range(count)]
    write_clip(root / "clips" / f"{names[0]}_000030.mp4", 0, size)
    for ytid in names[1:]:
        shutil.copyfile(
            root / "clips" / f"{names[0]}_000030.mp4", root / "clips" / f"{ytid}_000030.mp4"
        )
    (root / "list.csv").write_text("".join(f"{ytid},30,synthetic sound,test\n" for ytid in names))
    return root / "list.csv"


def reference_prepare(clip_list: Path, video_dir: Path, out: Path) -> None:
    """The plain loop: decode, resample and pick the frame of each clip, one after another."""
    out.mkdir(parents=True)
    for entry in read_clip_list(clip_list):
        path = video_dir / f"{entry.id}.mp4"
        audio = _reference_audio(path)
        candidates = [second + 0.5 for second in range(int(audio.size / SAMPLE_RATE))]
        window = evaluation_window(audio.size / SAMPLE_RATE)
        chosen = candidates[best_frame(candidates, middle_scores(candidates, window), window)]
        atomic_write_bytes(out / f"{entry.id}.wav", wav_bytes(audio, SAMPLE_RATE))
        atomic_write_bytes(out / f"{entry.id}.png", png_bytes(_reference_frame(path, chosen)))


def _reference_audio(path: Path) -> np.ndarray:
    """The audio track as 16 kHz mono float32."""
    import av
    import torch
    import torchaudio

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        planar = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
        rate = stream.rate
    mono = torch.from_numpy(planar.astype(np.float32).mean(axis=0).astype(np.float32))
    return torchaudio.functional.resample(mono, rate, SAMPLE_RATE).numpy()


def _reference_frame(path: Path, wanted: float):
    """The decoded frame nearest to `wanted` seconds (the earliest among equals), as a PIL image."""
    import av

    best, distance = None, float("inf")
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and abs(frame.time - wanted) < distance:
                best, distance = frame, abs(frame.time - wanted)
        return best.to_image()


def with_workers(clip_list: Path, video_dir: Path, out: Path, workers: int) -> None:
    settings = PrepareSettings(
        clip_list,
        video_dir,
        out,
        frame_select="centre",
        train_frame_select="centre",
        workers=workers,
    )
    summary = prepare_vggsound(settings, scorer=None)
    assert summary.skipped == {}, f"synthetic clips were skipped: {summary.skipped}"


def same_files(first: Path, second: Path, pairs: dict[str, str]) -> bool:
    """Whether every file `first / a` has the bytes of `second / b` for each a -> b."""
    return all((first / a).read_bytes() == (second / b).read_bytes() for a, b in pairs.items())


def run(quick: bool) -> dict:
    count, size = (2, (160, 120)) if quick else (48, (640, 360))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip_list = make_clips(root, count, size)
        clips = root / "clips"
        arguments = {
            "reference: plain per-clip loop": (reference_prepare, clip_list, clips, root / "ref"),
            "prepare_vggsound, 1 worker": (with_workers, clip_list, clips, root / "one", 1),
            "prepare_vggsound, 2 workers": (with_workers, clip_list, clips, root / "two", 2),
        }
        results = []
        for name, (function, *rest) in arguments.items():
            (_, seconds), rss = in_own_process(timed_call, IMPORTS, function, *rest)
            results.append(Measurement(name, count, seconds, rss))
        prepared = [p.relative_to(root / "one") for p in (root / "one").rglob("*") if p.is_file()]
        workers_agree = same_files(
            root / "one",
            root / "two",
            {str(p): str(p) for p in prepared if p.name != "prepare.jsonl"},
        )
        names = [f"{e.id}.{kind}" for e in read_clip_list(clip_list) for kind in ("wav", "png")]
        folders = {"wav": "audio", "png": "frames"}
        reference_agrees = same_files(
            root / "ref", root / "one", {n: f"{folders[n[-3:]]}/{n}" for n in names}
        )
    seconds = [m.seconds for m in results]
    ratios = {
        "1 worker / reference speed": seconds[0] / seconds[1],
        "2 workers / reference speed": seconds[0] / seconds[2],
        "2 workers / 1 worker speed": seconds[1] / seconds[2],
    }
    return stage_result(
        results,
        ratios,
        workers_agree and reference_agrees,
        clips=f"{count} x {SECONDS} s, {size[0]}x{size[1]} at {FPS} fps, AAC {AUDIO_RATE} Hz",
        workers_agree=workers_agree,
        reference_agrees=reference_agrees,
    )
