"""`audiobench data prepare vggsound` on the two real VGGSound clips and broken copies of them."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from audiobench.data import SAMPLE_RATE, frame_policy, load_index, read_frame
from audiobench.data.media import read_frames
from audiobench.data.training import clip_crops, frame_tensor
from audiobench.data.vggsound import (
    PrepareSettings,
    prepare_vggsound,
    read_classes,
    read_clip_list,
)
from audiobench.errors import AudiobenchError
from tests.conftest import dead_pid

AIRPLANE, TRAIN = "-_gaZzFfzDQ", "3YOH4c9HXpo"
STARTS = {AIRPLANE: 517, TRAIN: 290}
CLIP_LIST = f'{AIRPLANE},517,airplane,train\n{TRAIN},290,"railroad car, train wagon",test\n'


def authors_name(ytid):
    start = STARTS[ytid] * 1000
    return f"{ytid}_{start}_{start + 10000}"


@pytest.fixture
def layouts(shared_data, tmp_path):
    """The clips in the authors' layout (mp4 + wav) and in the official one (mp4 only)."""
    authors, official = tmp_path / "authors", tmp_path / "official"
    authors.mkdir()
    official.mkdir()
    for ytid in STARTS:
        for extension in ("mp4", "wav"):
            shutil.copy(shared_data / "clips" / f"{authors_name(ytid)}.{extension}", authors)
        shutil.copy(
            shared_data / "clips" / f"{authors_name(ytid)}.mp4",
            official / f"{ytid}_{STARTS[ytid]:06d}.mp4",
        )
    (tmp_path / "list.csv").write_text(CLIP_LIST)
    return tmp_path


def prepare(root, video_dir, out="data", scorer=None, **changes):
    settings = PrepareSettings(
        clip_list=root / "list.csv", video_dir=video_dir, out=root / out, **changes
    )
    return prepare_vggsound(settings, scorer)


def brightness_scorer(calls=None):
    """A controllable frame scorer: the brighter the frame, the better."""

    def score(frames, prompt):
        if calls is not None:
            calls.append(prompt)
        return [float(np.asarray(frame).mean()) for frame in frames]

    return score


@pytest.mark.parametrize("layout", ["authors", "official"])
def test_both_layouts_give_16khz_windows_and_a_frame_inside(layouts, layout, shared_data):
    summary = prepare(layouts, layouts / layout, scorer=brightness_scorer())
    assert summary.prepared == 2 and summary.skipped == {}
    samples = {sample.id: sample for sample in load_index(layouts / "data")}
    assert set(samples) == {f"{AIRPLANE}_000517", f"{TRAIN}_000290"}
    table = pd.read_parquet(layouts / "data" / "index.parquet").set_index("id")
    for sample_id, sample in samples.items():
        info = soundfile.info(sample.audio_path)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert info.frames == 160_125  # 10.008 s, as the clips are
        assert (sample.audio_start, sample.audio_end) == (2.5, 7.5)
        assert 2.5 <= table.loc[sample_id, "frame_time"] < 7.5
        with Image.open(sample.frame_path) as frame:
            assert frame.size == (1280, 720)
    assert samples[f"{TRAIN}_000290"].label == "railroad car, train wagon"
    assert samples[f"{AIRPLANE}_000517"].split == "train"


def test_audio_from_the_mp4_track_matches_the_authors_wav(layouts):
    prepare(
        layouts,
        layouts / "authors",
        out="from_wav",
        frame_select="centre",
        train_frame_select="centre",
    )
    prepare(
        layouts,
        layouts / "official",
        out="from_mp4",
        frame_select="centre",
        train_frame_select="centre",
    )
    for name in (f"{AIRPLANE}_000517.wav", f"{TRAIN}_000290.wav"):
        wav, _ = soundfile.read(layouts / "from_wav" / "audio" / name)
        mp4, _ = soundfile.read(layouts / "from_mp4" / "audio" / name)
        assert np.corrcoef(wav, mp4)[0, 1] > 0.999


def test_clip_selection_keeps_the_best_scoring_frame_in_the_window(layouts):
    calls = []
    prepare(layouts, layouts / "authors", scorer=brightness_scorer(calls), frame_select="clip")
    assert calls == ["a photo of a airplane", "a photo of a railroad car, train wagon"]
    sample = next(s for s in load_index(layouts / "data") if s.id.startswith(TRAIN))
    times, frames = read_frames(
        layouts / "authors" / f"{authors_name(TRAIN)}.mp4", [t + 0.5 for t in range(10)]
    )
    inside = [i for i, t in enumerate(times) if 2.5 <= t < 7.5]
    brightest = max(inside, key=lambda i: frames[i].mean())
    with Image.open(sample.frame_path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), frames[brightest])


def test_reference_frames_are_the_window_centre_by_default(layouts):
    """Not chosen by CLIP (which also scores IIS and AIC); only training frames are."""
    calls = []
    prepare(layouts, layouts / "authors", scorer=brightness_scorer(calls))
    assert calls == ["a photo of a airplane"]  # the train clip's crops only
    table = pd.read_parquet(layouts / "data" / "index.parquet")
    assert (table.frame_time == 4.5).all()  # of 2.5 ... 6.5 s, nearest to 5.0 (earliest tie)
    assert (table.frame_select == "centre").all()
    assert frame_policy(layouts / "data", "test") == "centre"


def test_training_crops_cover_every_whole_second_with_a_frame_inside(layouts):
    prepare(layouts, layouts / "authors", scorer=brightness_scorer())
    crops = pd.read_parquet(layouts / "data" / "train_crops.parquet")
    assert set(crops.id) == {f"{AIRPLANE}_000517"}  # only the clip of the train split
    assert crops.audio_start.tolist() == [0, 1, 2, 3, 4, 5]
    frame_ms = crops.frame.str.extract(r"_(\d+)\.png$")[0].astype(int) / 1000
    assert ((crops.audio_start <= frame_ms) & (frame_ms < crops.audio_end)).all()
    [sample] = load_index(layouts / "data", "train")
    crop = clip_crops(layouts / "data", [sample])[sample.id][2]
    assert crop.read_audio().shape == (5 * SAMPLE_RATE,)
    frame = frame_tensor(read_frame(crop.frame_path), (64, 40))
    assert frame.shape == (3, 40, 64) and frame.min() >= -1 and frame.max() <= 1


def test_demo_dataset_gets_windows_with_its_reference_frame(demo_dir):
    samples = load_index(demo_dir, "train")
    crops = clip_crops(demo_dir, samples)
    assert all(len(crops[s.id]) == 6 for s in samples)
    assert all(crop.frame_path == s.frame_path for s in samples for crop in crops[s.id])


def test_filters_drop_listed_ids(layouts, shared_data):
    summary = prepare(
        layouts,
        layouts / "authors",
        frame_select="centre",
        train_frame_select="centre",
        filters=[shared_data / "filter_low_quality_videos.txt"],
    )
    assert summary.prepared == 1 and summary.skipped == {"filtered": 1}
    skipped = pd.read_csv(layouts / "data" / "skipped.csv")
    assert skipped.id.tolist() == [f"{AIRPLANE}_000517"]
    assert "filter_low_quality_videos.txt" in skipped.detail[0]


def test_broken_clips_are_skipped_with_precise_reasons(shared_data, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    source = shared_data / "clips" / f"{authors_name(TRAIN)}.mp4"
    good_mp4 = source.read_bytes()
    cases = {  # ytid -> (files to write, expected reason, detail fragment)
        "truncatedAA": ({"mp4": good_mp4[:60_000]}, "unreadable", "video file"),
        "zerowavAAAA": ({"mp4": good_mp4, "wav": b""}, "unreadable", "audio file"),
        "silentAAAAA": ({"mp4": good_mp4, "wav": np.zeros(10 * SAMPLE_RATE)}, "silent", "silent"),
        "shortAAAAAA": (
            {"mp4": good_mp4, "wav": np.full(2 * SAMPLE_RATE, 0.1)},
            "too-short",
            "2.00 s of audio",
        ),
        "missingAAAA": ({}, "missing", "no video or audio file"),
    }
    lines = []
    for ytid, (files, _, _) in cases.items():
        for extension, content in files.items():
            path = clips / f"{ytid}_000010.{extension}"
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                soundfile.write(path, content, SAMPLE_RATE)
        lines.append(f"{ytid},10,airplane,test")
    lines.append(f"{TRAIN},290,airplane,test")
    shutil.copy(source, clips / f"{TRAIN}_000290.mp4")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    summary = prepare(tmp_path, clips, frame_select="centre", train_frame_select="centre")
    assert summary.prepared == 1
    skipped = pd.read_csv(tmp_path / "data" / "skipped.csv").set_index("id")
    for ytid, (_, reason, detail) in cases.items():
        assert skipped.loc[f"{ytid}_000010", "reason"] == reason
        assert detail in skipped.loc[f"{ytid}_000010", "detail"]


def test_resume_after_interruption_does_not_redo_finished_clips(layouts):
    calls = []
    scorer = brightness_scorer(calls)

    def interrupted(frames, prompt):
        if calls:
            raise KeyboardInterrupt
        return scorer(frames, prompt)

    with pytest.raises(KeyboardInterrupt):
        prepare(layouts, layouts / "authors", scorer=interrupted, frame_select="clip")
    assert len(calls) == 1
    killed_writer = f"tmp-{socket.gethostname()}-{dead_pid()}"
    for folder in ("frames", "train_frames"):
        (layouts / "data" / folder / f".{TRAIN}.png.{killed_writer}").write_bytes(b"partial")
    summary = prepare(layouts, layouts / "authors", scorer=scorer, frame_select="clip")
    assert not list((layouts / "data").rglob(f"*{killed_writer}"))
    assert summary.prepared == 2 and len(calls) == 2  # only the second clip was scored again
    single = prepare(
        layouts,
        layouts / "authors",
        out="uninterrupted",
        scorer=brightness_scorer(),
        frame_select="clip",
    )
    for folder in ("audio", "frames", "train_frames"):
        for path in (layouts / "uninterrupted" / folder).iterdir():
            assert (layouts / "data" / folder / path.name).read_bytes() == path.read_bytes()
    assert single.prepared == 2


def test_worker_pool_gives_the_same_dataset(layouts):
    prepare(
        layouts,
        layouts / "authors",
        out="one",
        frame_select="centre",
        train_frame_select="centre",
        workers=1,
    )
    prepare(
        layouts,
        layouts / "authors",
        out="two",
        frame_select="centre",
        train_frame_select="centre",
        workers=2,
    )
    for path in (layouts / "one").rglob("*"):
        if path.is_file() and path.name != "prepare.jsonl":
            assert (
                layouts / "two" / path.relative_to(layouts / "one")
            ).read_bytes() == path.read_bytes(), path.name


def test_real_lists_parse(shared_data):
    classes = read_classes(shared_data / "classes.csv")
    assert len(classes) == 309 and len(set(classes.values())) == 9
    assert classes["bird chirping, tweeting"] == "animals"
    entries = read_clip_list(shared_data / "test.csv")
    assert len(entries) == 15_446 and {entry.split for entry in entries} == {"test"}
    assert len({entry.label for entry in entries}) == 309
    assert entries[0].id == "glLQrEijrKg_000300" and entries[0].label == "playing hammond organ"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("abc,12,dog barking\n", "line 1: expected"),
        ("ytid0000000,1,dog,valid\n", "line 1: expected"),
        ('ytid0000000,1,"dog\n', "not a readable CSV"),
        ("", "lists no clips"),
    ],
)
def test_malformed_clip_lists_are_named(tmp_path, content, message):
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(AudiobenchError, match=message):
        read_clip_list(tmp_path / "list.csv")


def test_cli_prepares_and_exits_1_when_nothing_was_prepared(layouts, cli, tmp_path):
    code, out, _ = cli(
        "data",
        "prepare",
        "vggsound",
        "--csv",
        layouts / "list.csv",
        "--video-dir",
        layouts / "authors",
        "--out",
        layouts / "cli",
        "--frame-select",
        "centre",
        "--train-frame-select",
        "centre",
        "--workers",
        "1",
    )
    assert code == 0 and "2 clips prepared; skipped: none" in " ".join(out.split())
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = cli(
        "data",
        "prepare",
        "vggsound",
        "--csv",
        layouts / "list.csv",
        "--video-dir",
        empty,
        "--out",
        tmp_path / "none",
        "--frame-select",
        "centre",
        "--train-frame-select",
        "centre",
    )
    assert code == 1 and "0 clips prepared; skipped: 2 missing" in " ".join(out.split())


def test_prepared_real_clips_run_and_evaluate(layouts):
    """The test-list format (both clips in the test split) through prepare, run and evaluate."""
    from audiobench.evaluation import EvaluateSettings, evaluate
    from audiobench.runner import RunSettings, execute

    (layouts / "list.csv").write_text(
        f'{AIRPLANE}_000517.mp4,airplane\n{TRAIN}_000290.mp4,"railroad car, train wagon"\n'
    )
    prepare(layouts, layouts / "official", frame_select="centre", train_frame_select="centre")
    run = execute(
        RunSettings(
            method="reference", data_dir=layouts / "data", out=layouts / "runs", profile="tiny"
        )
    )
    assert run.ok == 2
    result = evaluate(EvaluateSettings(run.run_dir, metrics=("iis", "aic")))
    assert result["metrics"]["iis"]["value"] == 100.0 and result["metrics"]["aic"]["n"] == 2
