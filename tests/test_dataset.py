"""The dataset index and input readers: valid data loads, each kind of bad input is named."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile

from audiobench.data import INDEX_FILE, SAMPLE_RATE, load_index, read_audio_window, read_frame
from audiobench.errors import AudiobenchError, SampleError


@pytest.fixture
def dataset_copy(demo_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(demo_dir, copy)
    return copy


def rewrite_index(data_dir, change):
    table = pd.read_parquet(data_dir / INDEX_FILE)
    change(table).to_parquet(data_dir / INDEX_FILE, index=False)


def test_load_index_returns_samples_in_order(demo_dir):
    table = pd.read_parquet(demo_dir / INDEX_FILE)
    samples = load_index(demo_dir, "test")
    assert [s.id for s in samples] == table[table.split == "test"].id.tolist()
    assert all(s.audio_path.is_file() and s.frame_path.is_file() for s in samples)
    assert len(load_index(demo_dir)) == len(table)


def test_missing_directory_and_missing_index(tmp_path):
    with pytest.raises(AudiobenchError, match="nowhere does not exist"):
        load_index(tmp_path / "nowhere")
    with pytest.raises(AudiobenchError, match=f"has no {INDEX_FILE}.*audiobench data demo"):
        load_index(tmp_path)


def test_unknown_split_lists_the_splits_present(demo_dir):
    with pytest.raises(AudiobenchError, match=r"no samples in split 'val'.*test, train"):
        load_index(demo_dir, "val")


def test_empty_index(dataset_copy):
    rewrite_index(dataset_copy, lambda table: table.iloc[:0])
    with pytest.raises(AudiobenchError, match="has no samples"):
        load_index(dataset_copy)


def test_corrupt_index(dataset_copy):
    (dataset_copy / INDEX_FILE).write_bytes(b"PAR1 not really")
    with pytest.raises(AudiobenchError, match="not a readable Parquet table"):
        load_index(dataset_copy)


def test_missing_columns(dataset_copy):
    rewrite_index(dataset_copy, lambda table: table.drop(columns=["frame", "label"]))
    with pytest.raises(AudiobenchError, match="lacks the columns label, frame"):
        load_index(dataset_copy)


def test_duplicated_ids(dataset_copy):
    rewrite_index(dataset_copy, lambda table: pd.concat([table, table.iloc[:1]]))
    with pytest.raises(AudiobenchError, match="duplicated sample ids"):
        load_index(dataset_copy)


def test_paths_cannot_leave_the_dataset(dataset_copy):
    def escape(table):
        table.loc[0, "frame"] = "../../etc/passwd"
        return table

    rewrite_index(dataset_copy, escape)
    with pytest.raises(AudiobenchError, match="points outside the dataset"):
        load_index(dataset_copy)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", ".hidden"])
def test_ids_must_be_file_names(dataset_copy, bad_id):
    def rename(table):
        table.loc[0, "id"] = bad_id
        return table

    rewrite_index(dataset_copy, rename)
    with pytest.raises(AudiobenchError, match="not usable as file names"):
        load_index(dataset_copy)


def test_read_audio_window_reads_exactly_the_window(demo_dir):
    sample = load_index(demo_dir, "test")[0]
    whole, rate = soundfile.read(sample.audio_path, dtype="float32")
    window = sample.read_audio()
    assert rate == SAMPLE_RATE and window.dtype == np.float32
    first = round(sample.audio_start * SAMPLE_RATE)
    np.testing.assert_array_equal(window, whole[first : first + window.size])
    assert window.size == round((sample.audio_end - sample.audio_start) * SAMPLE_RATE)


def write_wav(path, audio, rate=SAMPLE_RATE, subtype="PCM_16"):
    soundfile.write(path, audio, rate, subtype=subtype)
    return path


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "audio file missing"),
        (lambda p: write_bytes(p, b""), "unreadable audio"),
        (lambda p: write_bytes(p, b"RIFF\x00\x00garbage" * 10), "unreadable audio"),
        (lambda p: write_wav(p, np.zeros(SAMPLE_RATE * 10), rate=44_100), "sample rate 44100"),
        (lambda p: write_wav(p, np.zeros(SAMPLE_RATE * 2)), "2.00 s long, shorter than"),
        (lambda p: write_wav(p, np.zeros((SAMPLE_RATE * 10, 2))), "2 channels, expected mono"),
        (
            lambda p: write_wav(p, np.full(SAMPLE_RATE * 10, np.nan), subtype="FLOAT"),
            "NaN or infinite",
        ),
    ],
    ids=["missing", "zero-byte", "corrupt", "wrong-rate", "too-short", "stereo", "nan"],
)
def test_bad_audio_names_the_file_and_the_problem(tmp_path, make, message):
    path = make(tmp_path / "clip.wav")
    with pytest.raises(SampleError, match=message) as error:
        read_audio_window(path, 2.5, 7.5)
    assert str(path) in str(error.value)


def test_bad_frames_name_the_file(tmp_path):
    with pytest.raises(SampleError, match=r"frame.png: image file missing"):
        read_frame(tmp_path / "frame.png")
    (tmp_path / "frame.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SampleError, match=r"frame.png: unreadable image"):
        read_frame(tmp_path / "frame.png")
