"""The demo dataset: deterministic, in the prepared-dataset format, and each class sounds right."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pandas as pd
import soundfile
from PIL import Image

from audiobench.data import INDEX_COLUMNS, SAMPLE_RATE, load_index
from audiobench.data.demo import CLASSES, FRAME_SIZE, write_demo_dataset


def tree_digest(root):
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_the_same_bytes(tmp_path, demo_dir):
    write_demo_dataset(tmp_path / "again")
    assert tree_digest(tmp_path / "again") == tree_digest(demo_dir)
    write_demo_dataset(tmp_path / "other", seed=1)
    assert tree_digest(tmp_path / "other") != tree_digest(demo_dir)


def test_layout_and_size(demo_dir):
    table = pd.read_parquet(demo_dir / "index.parquet")
    assert tuple(table.columns) == (*INDEX_COLUMNS, "frame_select")
    assert set(table.frame_select) == {"synthetic"}  # drawn pictures, recorded as such
    assert len(table) >= 24 and table.label.nunique() >= 4
    assert set(table.split) == {"train", "test"}
    assert (table.groupby("label").split.nunique() == 2).all()  # every class in both splits
    assert table.id.str.startswith("-").any()  # ids beginning with '-' as in real VGGSound
    assert table.id.str.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}").all()


def test_labels_are_real_vggsound_classes(shared_data):
    with open(shared_data / "classes.csv", newline="") as handle:
        vggsound = {row[0] for row in csv.reader(handle)}
    assert set(CLASSES) <= vggsound


def test_clips_are_ten_second_16khz_mono_with_a_five_second_window(demo_dir):
    for sample in load_index(demo_dir):
        info = soundfile.info(sample.audio_path)
        assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, 10 * SAMPLE_RATE)
        assert (sample.audio_start, sample.audio_end) == (2.5, 7.5)
        with Image.open(sample.frame_path) as frame:
            assert frame.mode == "RGB" and frame.size == (FRAME_SIZE, FRAME_SIZE)


def dominant_frequency(audio):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)[spectrum.argmax()]


def test_each_class_has_its_acoustic_signature(demo_dir):
    by_label = {}
    for sample in load_index(demo_dir):
        by_label.setdefault(sample.label, []).append(sample.read_audio())
    for audio in by_label["smoke detector beeping"]:
        assert 2900 < dominant_frequency(audio) < 3300
    for audio in by_label["ambulance siren"]:
        assert 350 < dominant_frequency(audio) < 1300
    for audio in by_label["telephone bell ringing"]:
        assert 370 < dominant_frequency(audio) < 480
    for audio in by_label["sea waves"]:
        assert dominant_frequency(audio) < 100  # brown noise: energy at the lowest frequencies
    for audio in by_label["telephone bell ringing"] + by_label["smoke detector beeping"]:
        frames = audio[: audio.size // 400 * 400].reshape(-1, 400)
        assert (np.abs(frames).max(axis=1) < 0.05).mean() > 0.3  # rings and beeps pause


def test_images_differ_between_classes_more_than_within(demo_dir):
    means = {}
    for sample in load_index(demo_dir):
        with Image.open(sample.frame_path) as frame:
            colour = np.asarray(frame, dtype=np.float64).mean(axis=(0, 1))
        means.setdefault(sample.label, []).append(colour)
    centres = {label: np.mean(values, axis=0) for label, values in means.items()}
    within = np.mean([np.linalg.norm(v - centres[k]) for k, vs in means.items() for v in vs])
    between = np.mean(
        [np.linalg.norm(a - b) for a in centres.values() for b in centres.values() if a is not b]
    )
    assert between > 2 * within
