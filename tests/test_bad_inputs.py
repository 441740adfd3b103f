"""The bad-input matrix: each kind of broken input gets a one-line error that names the file and
the problem; where the pipeline can go on it records the problem per sample and goes on; and
nothing already written is damaged.

Kinds covered here (the parsers' malformed inputs are explored further by the property tests):
audio in a run (truncated, random bytes, zero bytes, wrong rate, stereo, NaN, 0.5 s, missing),
images in an evaluation (unreadable frame, unreadable generated image), sources in
`data prepare` (truncated mp4, video without audio, audio without video, 0.5 s, silent,
duplicated id), lists (wrong columns, bad quoting), an empty dataset, checkpoints (truncated,
wrong shape), metrics.json (missing, malformed), a ratings file out of range, labels missing from
the class list, and a full disk.
"""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

from audiobench.data import SAMPLE_RATE, load_index, write_index
from audiobench.errors import AudiobenchError
from audiobench.evaluation import EvaluateSettings, evaluate
from audiobench.runner import RunSettings, execute
from tests.media import voice, write_mp4

# sample position in the demo's test split -> (how its audio file is broken, expected message)
AUDIO_CASES = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:100]), "0.00 s long, shorter than"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 8), "unreadable audio"),
    "zero bytes": (lambda p: p.write_bytes(b""), "unreadable audio"),
    "22.05 kHz": (lambda p: write(p, np.zeros(5 * 22050) + 0.1, 22050), "sample rate 22050 Hz"),
    "stereo": (lambda p: write(p, np.full((10 * SAMPLE_RATE, 2), 0.1)), "2 channels"),
    "NaN": (lambda p: write(p, np.full(10 * SAMPLE_RATE, np.nan)), "NaN or infinite"),
    "0.5 s": (lambda p: write(p, np.full(SAMPLE_RATE // 2, 0.1)), "shorter than the window"),
    "missing": (lambda p: p.unlink(), "audio file missing"),
}


def write(path, audio, rate=SAMPLE_RATE):
    soundfile.write(path, audio, rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def broken_run(demo_dir, tmp_path_factory):
    """An audiotoken run (it reads audio) over a copy of the demo with 8 broken test clips."""
    data = tmp_path_factory.mktemp("broken") / "demo"
    shutil.copytree(demo_dir, data)
    samples = load_index(data, "test")
    for sample, (breaks, _) in zip(samples, AUDIO_CASES.values(), strict=False):
        breaks(sample.audio_path)
    settings = RunSettings(
        method="audiotoken",
        data_dir=data,
        out=data.parent / "runs",
        profile="tiny",
        batch_size=4,
        options={"steps": "2"},
    )
    return data, samples, execute(settings)


@pytest.mark.parametrize("kind", AUDIO_CASES)
def test_broken_audio_fails_its_sample_only(broken_run, kind):
    _, samples, summary = broken_run
    position = list(AUDIO_CASES).index(kind)
    table = pd.read_parquet(summary.run_dir / "samples.parquet").set_index("id")
    row = table.loc[samples[position].id]
    assert row.status == "failed"
    assert str(samples[position].audio_path) in row.error
    assert AUDIO_CASES[kind][1] in row.error
    assert "\n" not in row.error
    assert summary.ok == len(samples) - len(AUDIO_CASES) > 0


@pytest.mark.parametrize("broken", ["frame", "generated image"])
def test_unreadable_images_are_excluded_from_evaluation_with_the_reason(broken_run, broken):
    data, samples, summary = broken_run
    run_copy = data.parent / f"copy-{broken.replace(' ', '-')}"
    shutil.copytree(summary.run_dir, run_copy)
    good = [s for s in samples[len(AUDIO_CASES) :]]
    victim = good[0]
    if broken == "frame":
        data_copy = data.parent / "demo-bad-frame"
        shutil.copytree(data, data_copy)
        target = data_copy / victim.frame_path.relative_to(data)
    else:
        data_copy = data
        target = run_copy / "images" / f"{victim.id}.png"
    target.write_bytes(b"\x89PNG broken")
    before = (run_copy / "samples.parquet").read_bytes()
    # a frame broken after the run is a changed dataset: scored only when allowed
    settings = EvaluateSettings(
        run_copy, metrics=("iis",), data_dir=data_copy, allow_dataset_change=broken == "frame"
    )
    report = evaluate(settings)
    reasons = {item["id"]: item["reason"] for item in report["excluded"]}
    assert str(target) in reasons[victim.id] and "unreadable image" in reasons[victim.id]
    assert report["metrics"]["iis"]["n"] == len(good) - 1
    table = pd.read_parquet(run_copy / "samples.parquet")
    assert (
        table.drop(columns="iis_win").to_json()
        == pd.read_parquet(pd.io.common.BytesIO(before)).to_json()
    )


def test_broken_sources_are_skipped_by_prepare_with_reasons(tmp_path):
    from audiobench.data.vggsound import PrepareSettings, prepare_vggsound

    videos = tmp_path / "videos"
    videos.mkdir()
    good = voice(120.0, 10.0, 0)
    write_mp4(videos / "goodAAAAAAA_000010.mp4", good)
    write_mp4(videos / "truncAAAAAA_000010.mp4", good)
    data = (videos / "truncAAAAAA_000010.mp4").read_bytes()
    (videos / "truncAAAAAA_000010.mp4").write_bytes(data[: len(data) // 3])
    write_mp4(videos / "mutedAAAAAA_000010.mp4", good, with_audio=False)
    soundfile.write(videos / "novideoAAAA_000010.wav", good, SAMPLE_RATE)
    write_mp4(videos / "shortAAAAAA_000010.mp4", good[: SAMPLE_RATE // 2])
    write_mp4(videos / "silentAAAAA_000010.mp4", good * 0)
    ids = ["goodAAAAAAA", "truncAAAAAA", "mutedAAAAAA", "novideoAAAA", "shortAAAAAA"]
    rows = [f"{ytid},10,speech,test" for ytid in [*ids, "silentAAAAA", "goodAAAAAAA"]]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    summary = prepare_vggsound(
        PrepareSettings(
            tmp_path / "list.csv",
            videos,
            tmp_path / "data",
            frame_select="centre",
            train_frame_select="centre",
            workers=1,
        ),
        None,
    )
    assert summary.prepared == 1
    skipped = pd.read_csv(tmp_path / "data" / "skipped.csv")
    reasons = {(r.id, r.reason) for r in skipped.itertuples()}
    assert reasons == {
        ("truncAAAAAA_000010", "unreadable"),
        ("mutedAAAAAA_000010", "no-audio"),
        ("novideoAAAA_000010", "missing"),
        ("shortAAAAAA_000010", "too-short"),
        ("silentAAAAA_000010", "silent"),
        ("goodAAAAAAA_000010", "duplicate"),
    }
    details = dict(zip(skipped.id, skipped.detail, strict=True))
    assert "truncAAAAAA_000010.mp4" in details["truncAAAAAA_000010"]
    assert "mutedAAAAAA_000010.mp4 has no audio track" in details["mutedAAAAAA_000010"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n", "list.csv, line 1"),  # wrong columns
        ('abcdefghijk,10,"unclosed label,test\n', "list.csv"),  # bad quoting
    ],
    ids=["wrong columns", "bad quoting"],
)
def test_malformed_lists_name_the_file(tmp_path, content, message):
    from audiobench.data.vggsound import read_clip_list

    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(AudiobenchError, match=message):
        read_clip_list(tmp_path / "list.csv")


def test_an_empty_dataset_is_named(tmp_path, cli):
    write_index(tmp_path, [])
    code, _, err = cli("run", "--method", "sd-text", "--data", tmp_path, "--out", tmp_path / "r")
    assert code == 2 and "index.parquet" in err and "no samples" in err


@pytest.mark.parametrize("kind", ["truncated", "wrong shape"])
def test_broken_checkpoints_are_named_and_nothing_is_written(demo_dir, tmp_path, cli, kind):
    from audiobench.methods.audiotoken.method import AudioTokenEmbedder

    path = tmp_path / "embedder_learned_embeds.bin"
    width = 48 if kind == "truncated" else 40  # tiny BEATs gives 48-d features
    torch.save(AudioTokenEmbedder(width, 32).state_dict(), path)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    arguments = ["--method", "audiotoken", "--data", demo_dir, "--profile", "tiny"]
    code, _, err = cli("run", *arguments, "--checkpoint", path, "--out", tmp_path / "runs")
    assert code == 2 and str(path) in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "runs").rglob("*.png"))


def test_missing_or_malformed_metrics_are_named(broken_run, tmp_path, cli):
    _, _, summary = broken_run
    code, _, err = cli("report", summary.run_dir)
    assert code == 2 and str(summary.run_dir) in err and "evaluate" in err
    copy = tmp_path / "run"
    shutil.copytree(summary.run_dir, copy)
    (copy / "metrics.json").write_text('{"metrics": ')
    out = tmp_path / "table.md"
    code, _, err = cli("report", copy, "--out", out)
    assert code == 2 and "metrics.json is not valid JSON" in err
    assert not out.exists()


def test_ratings_out_of_range_are_named(tmp_path):
    from audiobench.human_eval.ingest import ingest

    key = tmp_path / "key.csv"
    key.write_text("item_id,method,sample_id,label,kind\ni1,m,s,l,rating\n")
    responses = tmp_path / "rater.csv"
    responses.write_text("rater,item_id,rating\nr1,i1,7\n")
    with pytest.raises(AudiobenchError, match=r"rater\.csv.* not an integer from 1 to 5"):
        ingest([responses], key)


def test_labels_missing_from_the_class_list_are_reported(broken_run, tmp_path, cli):
    data, _, summary = broken_run
    copy = tmp_path / "run"
    shutil.copytree(summary.run_dir, copy)
    evaluate(EvaluateSettings(copy, metrics=("iis",), data_dir=data))
    classes = tmp_path / "classes.csv"
    classes.write_text("ambulance siren,10,vehicle\n")
    code, _, err = cli("report", copy, "--format", "html", "--classes", classes)
    assert code == 0
    assert f"warning: {classes}: 2 labels are not in the class list" in err


def test_a_full_disk_stops_with_a_clear_error_and_keeps_what_was_written(
    demo_dir, tmp_path, monkeypatch
):
    from audiobench import store

    settings = RunSettings(
        method="sd-text", data_dir=demo_dir, out=tmp_path, profile="tiny", batch_size=4,
        options={"steps": "1"},
    )  # fmt: skip
    first = execute(settings)
    images = {p.name: p.read_bytes() for p in (first.run_dir / "images").iterdir()}
    records = (first.run_dir / "samples.parquet").read_bytes()
    for image in list((first.run_dir / "images").iterdir())[:3]:
        image.unlink()

    calls = []

    def full_after_run_json(descriptor):  # run.json is written first; then the disk is full
        calls.append(descriptor)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full_after_run_json)
    with pytest.raises(AudiobenchError, match=r"cannot write .*\.png: No space left on device"):
        execute(settings)
    monkeypatch.undo()
    kept = {p.name: p.read_bytes() for p in (first.run_dir / "images").iterdir()}
    assert all(images[name] == data for name, data in kept.items())
    assert len(kept) == len(images) - 3
    assert (first.run_dir / "samples.parquet").read_bytes() == records
    assert not [p for p in first.run_dir.rglob("*") if store.TEMP_MARK in p.name]
    assert execute(settings).generated == 3  # once there is room again, the run completes
    assert json.loads((first.run_dir / "run.json").read_text())["images"]["count"] == 12
