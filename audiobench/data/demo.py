"""The demo dataset: synthetic sounds and drawn pictures of six real VGGSound classes.

It is the embedded default of the quickstart and the tests: written in exactly the on-disk
format of a prepared VGGSound dataset (10-second 16 kHz mono clips, the centre 5 s as the
evaluation window, one PNG reference frame per clip), deterministically from a seed, offline
and in about a second. Each class's sound is one a signal generator imitates convincingly and
its picture is drawn procedurally, with per-clip variation of pitch, rhythm, layout and colour.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from audiobench.data import SAMPLE_RATE, write_index
from audiobench.store import atomic_write_bytes, make_directory, png_bytes, wav_bytes

CLIP_SECONDS = 10.0
EVAL_WINDOW = (2.5, 7.5)  # the centre 5 s, the evaluation crop of every prepared dataset
FRAME_SIZE = 256
TRAIN_PER_CLASS = 4
TEST_PER_CLASS = 2
_YOUTUBE_ALPHABET = string.ascii_letters + string.digits + "-_"

Rng = np.random.Generator
SoundMaker = Callable[[Rng, np.ndarray], np.ndarray]
PictureMaker = Callable[[Rng, ImageDraw.ImageDraw], None]


def _tone(frequency: np.ndarray | float, t: np.ndarray) -> np.ndarray:
    """A sine whose frequency may change over time (phase = integral of frequency)."""
    frequency = np.broadcast_to(frequency, t.shape)
    return np.sin(2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE)


def _coloured_noise(rng: Rng, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent (1 = pink, 2 = brown), unit peak."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    frequencies[0] = frequencies[1]
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n)
    return noise / np.abs(noise).max()


def _siren_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    centre, depth, rate = rng.uniform(650, 850), rng.uniform(250, 350), rng.uniform(0.25, 0.45)
    frequency = centre + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return _tone(frequency, t) + 0.3 * _tone(2 * frequency, t) + 0.15 * _tone(3 * frequency, t)


def _telephone_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    base = rng.uniform(380, 420)
    tone = _tone(base, t) + _tone(base + 50, t)
    clapper = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 20 * t))
    phase = (t + rng.uniform(0, 3)) % 3.0  # ring 0.4 s, pause 0.2 s, ring 0.4 s, pause 2 s
    cadence = (phase < 0.4) | ((phase >= 0.6) & (phase < 1.0))
    return tone * clapper * cadence


def _rain_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    hiss = _coloured_noise(rng, t.size, 1.0)
    drops = np.zeros(t.size)
    drops[rng.integers(0, t.size, size=int(rng.uniform(150, 300) * CLIP_SECONDS))] = 1.0
    decay = np.exp(-np.arange(200) / 30.0) * np.sin(np.arange(200) * rng.uniform(0.6, 1.2))
    return 0.6 * hiss + np.convolve(drops * rng.uniform(0.2, 1.0, t.size), decay, "same")


def _church_bell_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    fundamental, interval = rng.uniform(280, 480), rng.uniform(1.8, 2.5)
    partials = (
        (0.5, 1.0, 3.0),
        (1.0, 0.8, 2.0),
        (1.2, 0.5, 1.6),
        (1.5, 0.4, 1.3),
        (2.0, 0.5, 1.0),
        (2.5, 0.3, 0.8),
        (3.0, 0.2, 0.6),
    )
    strike_time = (t + rng.uniform(0, interval)) % interval
    return sum(
        amplitude * np.exp(-strike_time / decay) * _tone(ratio * fundamental, t)
        for ratio, amplitude, decay in partials
    )


def _smoke_detector_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    phase = (t + rng.uniform(0, 4)) % 4.0  # three 0.5 s beeps, then a 1.5 s pause
    beeping = (phase < 2.5) & ((phase % 1.0) < 0.5)
    return _tone(rng.uniform(3000, 3200), t) * beeping


def _sea_waves_sound(rng: Rng, t: np.ndarray) -> np.ndarray:
    surf = _coloured_noise(rng, t.size, 2.0) + 0.3 * _coloured_noise(rng, t.size, 1.0)
    period = rng.uniform(5.0, 8.0)
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * (t / period + rng.uniform(0, 1)))
    return surf * (0.15 + 0.85 * swell**2)


def _jitter(rng: Rng, colour: tuple[int, int, int], amount: int = 25) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _vertical_gradient(draw: ImageDraw.ImageDraw, top: tuple, bottom: tuple, y0: int, y1: int):
    for y in range(y0, y1):
        mix = (y - y0) / max(1, y1 - y0 - 1)
        draw.line(
            [(0, y), (FRAME_SIZE, y)],
            fill=tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True)),
        )


def _siren_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    horizon = int(rng.integers(150, 180))
    _vertical_gradient(draw, _jitter(rng, (120, 170, 230)), (210, 225, 240), 0, horizon)
    draw.rectangle([0, horizon, FRAME_SIZE, FRAME_SIZE], fill=_jitter(rng, (90, 90, 95), 15))
    x, y = int(rng.integers(20, 70)), horizon - int(rng.integers(70, 90))
    width = int(rng.integers(140, 170))
    draw.rectangle([x, y, x + width, y + 75], fill=(245, 245, 240), outline=(60, 60, 60))
    draw.rectangle([x + width - 45, y + 10, x + width - 8, y + 40], fill=(120, 160, 200))
    draw.rectangle([x, y + 50, x + width, y + 58], fill=(210, 30, 30))
    cx, cy = x + width // 3, y + 28
    draw.rectangle([cx - 4, cy - 14, cx + 4, cy + 14], fill=(210, 30, 30))
    draw.rectangle([cx - 14, cy - 4, cx + 14, cy + 4], fill=(210, 30, 30))
    draw.rectangle([x + width // 2 - 12, y - 10, x + width // 2 + 12, y], fill=(30, 80, 255))
    for wheel_x in (x + 30, x + width - 30):
        draw.ellipse([wheel_x - 15, y + 62, wheel_x + 15, y + 92], fill=(20, 20, 20))


def _telephone_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([0, 0, FRAME_SIZE, FRAME_SIZE], fill=_jitter(rng, (150, 100, 60)))
    for y in range(0, FRAME_SIZE, int(rng.integers(12, 20))):
        draw.line([(0, y), (FRAME_SIZE, y + int(rng.integers(-6, 7)))], fill=(125, 80, 45))
    body = _jitter(rng, (200, 20, 25), 30)
    x, y = int(rng.integers(40, 80)), int(rng.integers(90, 120))
    draw.rounded_rectangle([x, y, x + 130, y + 90], radius=18, fill=body, outline=(40, 0, 0))
    draw.rounded_rectangle(
        [x - 10, y - 30, x + 140, y + 2], radius=14, fill=body, outline=(40, 0, 0)
    )
    cx, cy = x + 65, y + 50
    draw.ellipse([cx - 30, cy - 30, cx + 30, cy + 30], fill=(235, 235, 225), outline=(30, 30, 30))
    for k in range(10):
        angle = 2 * np.pi * k / 12
        hx, hy = cx + 20 * np.cos(angle), cy + 20 * np.sin(angle)
        draw.ellipse([hx - 4, hy - 4, hx + 4, hy + 4], fill=(40, 40, 40))


def _rain_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    ground = int(rng.integers(170, 200))
    _vertical_gradient(draw, _jitter(rng, (70, 75, 85), 15), (140, 145, 150), 0, ground)
    draw.rectangle([0, ground, FRAME_SIZE, FRAME_SIZE], fill=_jitter(rng, (60, 65, 60), 15))
    slant = rng.uniform(-0.4, 0.1)
    for _ in range(int(rng.integers(180, 260))):
        x, y, length = rng.uniform(-40, FRAME_SIZE), rng.uniform(0, ground), rng.uniform(8, 20)
        draw.line([(x, y), (x + slant * length, y + length)], fill=(170, 190, 230), width=1)
    for _ in range(int(rng.integers(3, 6))):
        px, py = rng.uniform(0, FRAME_SIZE), rng.uniform(ground + 10, FRAME_SIZE - 10)
        draw.ellipse([px - 25, py - 5, px + 25, py + 5], outline=(150, 170, 210))


def _church_bell_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    _vertical_gradient(draw, _jitter(rng, (90, 150, 220)), (190, 215, 240), 0, FRAME_SIZE)
    stone = _jitter(rng, (150, 140, 125), 15)
    draw.rectangle([0, 0, 40, FRAME_SIZE], fill=stone)
    draw.rectangle([FRAME_SIZE - 40, 0, FRAME_SIZE, FRAME_SIZE], fill=stone)
    draw.rectangle([0, 0, FRAME_SIZE, 35], fill=stone)
    cx, top = FRAME_SIZE // 2 + int(rng.integers(-20, 21)), int(rng.integers(60, 80))
    half, height = int(rng.integers(55, 70)), int(rng.integers(110, 130))
    gold = _jitter(rng, (205, 160, 50), 20)
    draw.line([(cx, 35), (cx, top)], fill=(60, 50, 40), width=5)
    draw.polygon(
        [
            (cx - 22, top),
            (cx + 22, top),
            (cx + half - 15, top + height - 20),
            (cx + half, top + height),
            (cx - half, top + height),
            (cx - half + 15, top + height - 20),
        ],
        fill=gold,
        outline=(90, 60, 10),
    )
    draw.ellipse([cx - 10, top + height - 5, cx + 10, top + height + 15], fill=(80, 60, 20))


def _smoke_detector_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([0, 0, FRAME_SIZE, FRAME_SIZE], fill=_jitter(rng, (232, 230, 222), 10))
    cx = FRAME_SIZE // 2 + int(rng.integers(-30, 31))
    cy = FRAME_SIZE // 2 + int(rng.integers(-30, 31))
    radius = int(rng.integers(70, 95))
    draw.ellipse(
        [cx - radius, cy - radius, cx + radius, cy + radius],
        fill=(250, 250, 248),
        outline=(170, 170, 170),
        width=3,
    )
    for ring in (0.75, 0.55, 0.35):
        r = radius * ring
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(185, 185, 185), width=2)
    draw.ellipse([cx + radius * 0.45, cy - 6, cx + radius * 0.45 + 10, cy + 4], fill=(230, 0, 0))


def _sea_waves_picture(rng: Rng, draw: ImageDraw.ImageDraw) -> None:
    horizon, shore = int(rng.integers(70, 100)), int(rng.integers(190, 220))
    _vertical_gradient(draw, _jitter(rng, (110, 170, 235)), (200, 225, 245), 0, horizon)
    _vertical_gradient(draw, _jitter(rng, (20, 70, 140)), (40, 130, 170), horizon, shore)
    draw.rectangle([0, shore, FRAME_SIZE, FRAME_SIZE], fill=_jitter(rng, (225, 205, 160), 15))
    for row in range(int(rng.integers(4, 7))):
        y = horizon + (shore - horizon) * (row + 0.5) / 6.5
        phase, wavelength = rng.uniform(0, 2 * np.pi), rng.uniform(30, 60)
        crest = [
            (x, y + 5 * np.sin(2 * np.pi * x / wavelength + phase))
            for x in range(0, FRAME_SIZE + 4, 4)
        ]
        draw.line(crest, fill=(235, 245, 250), width=2 + row // 2)


CLASSES: dict[str, tuple[SoundMaker, PictureMaker]] = {
    "ambulance siren": (_siren_sound, _siren_picture),
    "telephone bell ringing": (_telephone_sound, _telephone_picture),
    "raining": (_rain_sound, _rain_picture),
    "church bell ringing": (_church_bell_sound, _church_bell_picture),
    "smoke detector beeping": (_smoke_detector_sound, _smoke_detector_picture),
    "sea waves": (_sea_waves_sound, _sea_waves_picture),
}


def _youtube_like_id(rng: Rng, force_leading_dash: bool) -> str:
    """An 11-character id like YouTube's; some begin with '-', as real VGGSound ids do."""
    letters = rng.choice(list(_YOUTUBE_ALPHABET), size=11)
    ytid = "".join(letters)
    return "-" + ytid[1:] if force_leading_dash else ytid


def _clip_audio(rng: Rng, sound: SoundMaker) -> np.ndarray:
    t = np.arange(int(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    signal = sound(rng, t)
    signal = signal / np.abs(signal).max() + 0.01 * rng.standard_normal(t.size)
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


def _clip_frame(rng: Rng, picture: PictureMaker) -> Image.Image:
    image = Image.new("RGB", (FRAME_SIZE, FRAME_SIZE))
    picture(rng, ImageDraw.Draw(image))
    grain = rng.normal(0, 4, (FRAME_SIZE, FRAME_SIZE, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def synthetic_clip(rng: Rng, label: str) -> tuple[np.ndarray, Image.Image]:
    """A 10-second clip of one demo class: (float32 16 kHz audio, reference frame)."""
    sound, picture = CLASSES[label]
    return _clip_audio(rng, sound), _clip_frame(rng, picture)


def write_demo_dataset(out: Path, seed: int = 0) -> Path:
    """Write the demo dataset to `out` (same seed, same bytes) and return the index path."""
    out = make_directory(out)
    make_directory(out / "audio")
    make_directory(out / "frames")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for label in CLASSES:
        for k in range(TRAIN_PER_CLASS + TEST_PER_CLASS):
            ytid = _youtube_like_id(rng, force_leading_dash=not rows)
            sample_id = f"{ytid}_{int(rng.integers(0, 300)):06d}"
            audio_file, frame_file = f"audio/{sample_id}.wav", f"frames/{sample_id}.png"
            audio, frame = synthetic_clip(rng, label)
            atomic_write_bytes(out / audio_file, wav_bytes(audio, SAMPLE_RATE))
            atomic_write_bytes(out / frame_file, png_bytes(frame))
            rows.append(
                {
                    "id": sample_id,
                    "label": label,
                    "split": "train" if k < TRAIN_PER_CLASS else "test",
                    "audio": audio_file,
                    "audio_start": EVAL_WINDOW[0],
                    "audio_end": EVAL_WINDOW[1],
                    "frame": frame_file,
                    "frame_select": "synthetic",  # drawn pictures, not frames of a video
                }
            )
    return write_index(out, rows)
