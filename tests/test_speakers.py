"""The speaker study: data preparation, the X-vector encoder, SID, and the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from audiobench.methods.audiotoken.xvector import XVECTOR, load_xvector
from PIL import Image

from audiobench.data import SAMPLE_RATE, load_index
from audiobench.data.speakers import assign_splits, prepare_speakers
from audiobench.errors import AudiobenchError
from audiobench.metrics.scores import identification_accuracy
from audiobench.models import LoadOptions
from tests.media import voice, write_mp4

CPU = LoadOptions(torch.device("cpu"), torch.float32)
PITCH = {"Ada Lovelace": 110.0, "Grace": 210.0, "Linus": 160.0}


@pytest.fixture(scope="module")
def speaker_root(tmp_path_factory) -> Path:
    """Ada: two videos; Grace: three wavs and a picture; Linus: two wavs, a picture and
    three broken recordings (too short, silent, not audio at all)."""
    root = tmp_path_factory.mktemp("speakers") / "voices"
    for speaker in PITCH:
        (root / speaker).mkdir(parents=True)
    for k in range(2):
        write_mp4(root / "Ada Lovelace" / f"talk {k}.mp4", voice(PITCH["Ada Lovelace"], 11, k))
    for name, count in (("Grace", 3), ("Linus", 2)):
        for k in range(count):
            audio = voice(PITCH[name], 10.5, 10 + k)
            soundfile.write(root / name / f"take{k}.wav", audio, SAMPLE_RATE)
        colour = (200, 40, 40) if name == "Grace" else (40, 40, 200)
        Image.new("RGB", (40, 40), colour).save(root / name / "portrait.png")
    soundfile.write(root / "Linus" / "short.wav", voice(160, 2, 3), SAMPLE_RATE)
    soundfile.write(root / "Linus" / "silent.wav", np.zeros(6 * SAMPLE_RATE), SAMPLE_RATE)
    (root / "Linus" / "broken.wav").write_bytes(b"RIFF\x00\x00not a wave")
    return root


@pytest.fixture(scope="module")
def speaker_data(speaker_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speaker-data") / "data"
    prepare_speakers(speaker_root, out)
    return out


def test_prepared_clips_are_the_recordings_cut_in_five_seconds(speaker_root, speaker_data):
    table = pd.read_parquet(speaker_data / "index.parquet")
    assert sorted(table.label.unique()) == sorted(PITCH)
    assert (table.audio_end - table.audio_start == 5.0).all()
    # 11 s videos and 10.5 s wavs give two clips each; Linus's broken files give none.
    assert table.groupby("label").size().to_dict() == {"Ada Lovelace": 4, "Grace": 6, "Linus": 4}
    row = table[table.source == "Grace/take1.wav"].sort_values("clip_start").iloc[1]
    source, _ = soundfile.read(speaker_root / "Grace" / "take1.wav", dtype="float32")
    clip, rate = soundfile.read(speaker_data / row.audio, dtype="float32")
    assert rate == SAMPLE_RATE and row.clip_start == 5.0
    np.testing.assert_allclose(clip, source[5 * SAMPLE_RATE : 10 * SAMPLE_RATE], atol=1 / 2**15)
    assert all(soundfile.info(speaker_data / a).duration == 5.0 for a in table.audio)


def test_frames_come_from_the_video_at_each_clip_centre_or_from_pictures(speaker_data):
    table = pd.read_parquet(speaker_data / "index.parquet").set_index("id")
    ada = table[table.label == "Ada Lovelace"].sort_values(["source", "clip_start"])
    levels = [np.asarray(Image.open(speaker_data / f)).mean() for f in ada.frame]
    # brightness 20 per second: the frames at 2.5 s and 7.5 s are about 50 and 150
    assert levels[0] == pytest.approx(50, abs=12) and levels[1] == pytest.approx(150, abs=12)
    grace = table[table.label == "Grace"].frame.iloc[0]
    assert np.asarray(Image.open(speaker_data / grace))[0, 0].tolist() == [200, 40, 40]


def test_no_recording_is_in_both_splits(speaker_data):
    table = pd.read_parquet(speaker_data / "index.parquet")
    splits_per_source = table.groupby("source").split.nunique()
    assert (splits_per_source == 1).all()
    test_sources = table[table.split == "test"].groupby("label").source.nunique().to_dict()
    assert test_sources == {"Ada Lovelace": 1, "Grace": 1, "Linus": 1}
    crops = pd.read_parquet(speaker_data / "train_crops.parquet")
    assert sorted(crops.id) == sorted(table[table.split == "train"].id)


def test_broken_recordings_are_skipped_with_reasons(speaker_data):
    skipped = pd.read_csv(speaker_data / "skipped.csv")
    reasons = dict(zip(skipped.source, skipped.reason, strict=True))
    assert reasons == {
        "Linus/broken.wav": "unreadable",
        "Linus/short.wav": "too-short",
        "Linus/silent.wav": "silent",
    }
    assert "2.00 s of audio" in skipped.set_index("source").detail["Linus/short.wav"]


@pytest.mark.parametrize(("count", "tests"), [(1, 0), (2, 1), (5, 1), (8, 2), (10, 2)])
def test_split_sizes_and_independence_from_listing_order(count, tests):
    files = [Path(f"rec{k:02d}.wav") for k in range(count)]
    split = assign_splits(files)
    assert list(split.values()).count("test") == tests
    assert assign_splits(files[::-1]) == split


def test_a_single_speaker_or_no_usable_clip_is_an_error(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(AudiobenchError, match="at least 2"):
        prepare_speakers(tmp_path, tmp_path / "out")
    (tmp_path / "other").mkdir()
    soundfile.write(tmp_path / "other" / "a.wav", voice(100, 1, 0), SAMPLE_RATE)
    with pytest.raises(AudiobenchError, match="no usable clip"):
        prepare_speakers(tmp_path, tmp_path / "out")


def test_identification_on_constructed_embeddings():
    prototypes = torch.eye(3, 8, dtype=torch.float64)
    labels = ["a", "b", "c"]
    references = torch.cat([prototypes * 2, prototypes + 0.1])  # two references per label
    images = torch.stack([prototypes[0], prototypes[1] + prototypes[2] * 0.5, prototypes[0]])
    identified, correct = identification_accuracy(images, ["a", "b", "c"], references, labels * 2)
    assert identified == ["a", "b", "a"]
    assert correct.tolist() == [1.0, 1.0, 0.0]
    # equally close to b and c: the alphabetically first wins
    tie, _ = identification_accuracy(
        prototypes[1:2] + prototypes[2:3], ["c"], references, labels * 2
    )
    assert tie == ["b"]


def test_identification_equals_a_brute_force_computation():
    generator = torch.Generator().manual_seed(0)
    images, references = (
        torch.randn(40, 6, generator=generator),
        torch.randn(30, 6, generator=generator),
    )
    labels = [f"s{k % 4}" for k in range(40)]
    reference_labels = [f"s{k % 4}" for k in range(30)]
    identified, correct = identification_accuracy(images, labels, references, reference_labels)
    for image, label, found, ok in zip(images, labels, identified, correct, strict=True):
        scores = {}
        for name in sorted(set(reference_labels)):
            members = [
                r / r.norm() for r, n in zip(references, reference_labels, strict=True) if n == name
            ]
            mean = sum(members) / len(members)
            scores[name] = float(image @ mean / (image.norm() * mean.norm()))
        assert found == max(scores, key=scores.get)
        assert ok == (found == label)


def test_identification_refuses_unknown_labels_and_a_single_speaker():
    with pytest.raises(ValueError, match="no reference images for d"):
        identification_accuracy(torch.ones(1, 2), ["d"], torch.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match="at least 2 labels"):
        identification_accuracy(torch.ones(1, 2), ["a"], torch.eye(2), ["a", "a"])


def test_tiny_xvector_is_deterministic_batch_independent_and_round_trips(tmp_path):
    encoder = XVECTOR.build_tiny(CPU)
    audio = torch.from_numpy(np.stack([voice(p, 5, 0) for p in PITCH.values()]))
    features = encoder.layer_features(audio)
    assert features.shape == (3, 1, 32)
    assert torch.equal(encoder.layer_features(audio), features)
    torch.testing.assert_close(encoder.layer_features(audio[1:2]), features[1:2])
    assert features.std(dim=0).mean() > 0.1 * features.abs().mean()  # voices differ
    torch.save(encoder.network.state_dict(), tmp_path / "embedding_model.ckpt")
    loaded = load_xvector(tmp_path / "embedding_model.ckpt", CPU)
    assert torch.equal(loaded.layer_features(audio), features)


def test_an_xvector_checkpoint_of_another_model_is_named(tmp_path):
    torch.save({"fc.weight": torch.ones(2, 2)}, tmp_path / "other.ckpt")
    with pytest.raises(AudiobenchError, match=r"other.ckpt is not a speechbrain X-vector"):
        load_xvector(tmp_path / "other.ckpt", CPU)


def test_speaker_study_end_to_end(speaker_root, tmp_path, cli):
    data, ckpt, runs = tmp_path / "data", tmp_path / "ckpt", tmp_path / "runs"
    code, out, _ = cli("data", "prepare", "speakers", "--root", speaker_root, "--out", data)
    assert code == 0 and "3 speakers" in out and "1 silent" in out
    code, _, err = cli(
        "train", "--method", "audiotoken-speaker", "--data", data, "--profile", "tiny",
        "--out", ckpt, "--set", "steps=3", "--set", "batch_size=2",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = cli(
        "run", "--method", "audiotoken-speaker", "--data", data, "--profile", "tiny",
        "--checkpoint", ckpt, "--out", runs, "--set", "steps=2",
    )  # fmt: skip
    assert code == 0, err
    [run_dir] = runs.iterdir()
    code, _, err = cli("evaluate", run_dir, "--metrics", "iis,sid", "--json")
    assert code == 0, err
    samples = pd.read_parquet(run_dir / "samples.parquet")
    test_samples = load_index(data, "test")
    assert len(samples) == len(test_samples) == samples.sid_correct.notna().sum()
    code, out, _ = cli("report", run_dir, "--metrics", "iis,sid")
    assert code == 0 and "| IIS ↑ | SID ↑ | N |" in out and "AudioToken (speakers)" in out
    sid = 100 * samples.sid_correct.mean()
    assert f"{sid:.2f}" in out
