"""The tiny profile's per-method defaults, progress per iteration and as plain lines in logs,
an interrupted run keeping its finished samples, and runs free of third-party warning noise."""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from audiobench.methods.wav2clip_vqgan.method import (
    TINY_CUTN,
    TINY_SIZE,
    TINY_STEPS,
    VQGANCLIPConfig,
    Wav2CLIPVQGAN,
)
from PIL import Image

from audiobench import progress as progress_module
from audiobench import runner
from audiobench.models import LoadOptions, ModelZoo
from audiobench.progress import Progress, progress_bar
from audiobench.registry import MethodContext
from audiobench.runner import RunSettings, execute, method_config

CPU = LoadOptions(torch.device("cpu"), torch.float32)


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_most_one_per_interval_and_always_the_last():
    clock, stream = FakeClock(), io.StringIO()  # a StringIO is no terminal: plain lines
    with progress_bar(12, "generate m", "samples", stream=stream, clock=clock) as progress:
        progress.advance(0)  # the first report is written at once
        for second, step in ((1, 1), (4.9, 2), (5.0, 3), (9.0, 4)):
            clock.now = second
            progress.note(f"iteration {step}/60")
        clock.now = 10.0
        progress.advance(8)  # 5.0 s after the last line: written, without the finished note
        clock.now = 11.0
        progress.advance(4)  # too soon: left to the end
    assert stream.getvalue().splitlines() == [
        "generate m: 0/12 samples",
        "generate m: 0/12 samples, iteration 3/60",
        "generate m: 8/12 samples",
        "generate m: 12/12 samples",
    ]


def test_the_last_line_is_not_repeated():
    clock, stream = FakeClock(), io.StringIO()
    with progress_bar(2, "features", stream=stream, clock=clock) as progress:
        progress.advance(2)
    assert stream.getvalue().splitlines() == ["features: 2/2"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_with_the_note():
    stream = Terminal()
    with progress_bar(4, "generate m", "samples", stream=stream) as progress:
        progress.advance(1)
        progress.note("iteration 3/5")
    output = stream.getvalue()
    assert "1/4" in output and "iteration 3/5" in output
    assert "generate m: " not in output  # no plain lines


def test_tiny_defaults_apply_on_tiny_only_and_set_overrides_them():
    def config(profile, **options):
        run = RunSettings("wav2clip-vqgan", Path("data"), Path("out"), profile=profile)
        return method_config(Wav2CLIPVQGAN, replace(run, options=options))

    tiny = VQGANCLIPConfig(steps=TINY_STEPS, cutn=TINY_CUTN, size=TINY_SIZE)
    assert config("tiny") == tiny
    assert config("tiny", steps="7") == replace(tiny, steps=7)
    assert config("paper") == config("paper-random") == VQGANCLIPConfig()  # 500 steps, 512 px
    assert config("paper", cutn="4") == VQGANCLIPConfig(cutn=4)


def test_every_iteration_reaches_the_reporter():
    zoo = ModelZoo("tiny", CPU)
    steps: list[tuple[int, int]] = []
    method = Wav2CLIPVQGAN(VQGANCLIPConfig(steps=3, cutn=2, size=32))
    method.setup(MethodContext(zoo, CPU.device, CPU.dtype, report_step=lambda *s: steps.append(s)))
    audio = np.random.default_rng(0).normal(0, 0.1, (2, 80_000)).astype(np.float32)
    images = method.generate(list(audio), [1, 2])
    assert [image.size for image in images] == [(32, 32)] * 2
    assert steps == [(1, 3), (2, 3), (3, 3)]


def every_report_written(monkeypatch) -> None:
    """Make the run's plain progress write every report: its clock jumps a whole interval at
    each reading."""
    clock = itertools.count(0, progress_module.PLAIN_INTERVAL).__next__
    monkeypatch.setattr(runner, "progress_bar", partial(progress_bar, clock=clock))


def test_a_tiny_run_reports_iterations_and_records_the_options_it_used(
    demo_dir, tmp_path, capsys, monkeypatch
):
    every_report_written(monkeypatch)
    settings = RunSettings(
        "wav2clip-vqgan", demo_dir, tmp_path, limit=4, profile="tiny", batch_size=2
    )
    summary = execute(replace(settings, options={"steps": "3"}))
    assert summary.ok == 4
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("generate")]
    assert lines[0] == "generate wav2clip-vqgan: 0/4 samples"
    assert "generate wav2clip-vqgan: 0/4 samples, iteration 2/3" in lines
    assert "generate wav2clip-vqgan: 2/4 samples, iteration 3/3" in lines
    assert lines[-1] == "generate wav2clip-vqgan: 4/4 samples"
    recorded = json.loads((summary.run_dir / "run.json").read_text())["method_config"]
    tiny_with_set = VQGANCLIPConfig(steps=3, cutn=TINY_CUTN, size=TINY_SIZE)
    assert recorded == asdict(tiny_with_set)  # `--set steps=3` over the tiny defaults
    image = Image.open(next((summary.run_dir / "images").iterdir()))
    assert image.size == (TINY_SIZE, TINY_SIZE)


def test_an_interrupted_run_keeps_its_finished_batches(demo_dir, tmp_path, monkeypatch):
    """Ctrl-C arriving during an iteration of the second batch: the first batch's images and
    records stay, and the rerun makes only the rest."""

    @contextmanager
    def interrupting(total: int, *args, **kwargs) -> Iterator[Progress]:
        with progress_bar(total, *args, **kwargs) as real:

            class Interrupting(Progress):
                done = 0

                def advance(self, amount: int) -> None:
                    self.done += amount
                    real.advance(amount)

                def note(self, text: str) -> None:
                    if self.done >= 2:
                        raise KeyboardInterrupt

            yield Interrupting()

    settings = RunSettings(
        "wav2clip-vqgan", demo_dir, tmp_path, limit=4, profile="tiny", batch_size=2
    )
    settings = replace(settings, options={"steps": "3"})
    monkeypatch.setattr(runner, "progress_bar", interrupting)
    with pytest.raises(KeyboardInterrupt):
        execute(settings)
    run_dir = tmp_path / "wav2clip-vqgan-test-first4-tiny-seed0"
    table = pd.read_parquet(run_dir / "samples.parquet")
    assert list(table.status) == ["ok", "ok"]
    assert sorted(p.stem for p in (run_dir / "images").iterdir()) == sorted(table.id)
    monkeypatch.setattr(runner, "progress_bar", progress_bar)
    summary = execute(settings)
    assert (summary.ok, summary.generated) == (4, 2)


@contextmanager
def diffusers_log() -> Iterator[list[str]]:
    """The messages diffusers logs meanwhile (its logger does not propagate to the root)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_unclip_in_half_precision_builds_without_fp32_warnings():
    """On a GPU runs are in float16; the tiny and paper-random unCLIP pipelines are cast after
    being built, which diffusers' own cast reported as "modules that should be kept in float32:
    []" for the UNet and the VAE on every run."""
    from audiobench.methods.imagebind_unclip import method  # noqa: F401  (registers `unclip`)

    with diffusers_log() as messages:
        pipeline = ModelZoo("tiny", LoadOptions(torch.device("cpu"), torch.bfloat16)).load("unclip")
    assert not [message for message in messages if "float32" in message]
    for component in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
        assert component.dtype == torch.bfloat16
    assert pipeline.image_normalizer.mean.dtype == torch.bfloat16


def test_fid_warns_of_no_dataloader_workers(tmp_path, cli, recwarn):
    for folder, shade in (("a", 40), ("b", 200)):
        (tmp_path / folder).mkdir()
        for index in range(3):
            pixels = np.full((32, 32, 3), shade + 10 * index, np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{index}.png")
    code, out, _ = cli("fid", tmp_path / "a", tmp_path / "b", "--profile", "tiny")
    assert code == 0 and out.startswith("FID ")
    assert not [w for w in recwarn if "DataLoader" in str(w.message)]
