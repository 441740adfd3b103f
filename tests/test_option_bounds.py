"""Bounds on every numeric option (issue 17, item 11).

Each row is a command with one bad value: it must exit with code 2, print exactly one line on
stderr, and write nothing. The rows cover every numeric option of every command (checked
against the command tree) and every bounded option of every method (`--set`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import pytest
import typer.main

from audiobench.bounds import METADATA_KEY, Bounds, bounded
from audiobench.cli import app
from audiobench.errors import AudiobenchError
from audiobench.registry import Method, build_config, discover

DATA, OUT = "{data}", "{out}"  # replaced by the demo dataset and a folder under tmp_path
RUN = ["--data", DATA, "--out", OUT, "--profile", "tiny"]


class Row(NamedTuple):
    command: str  # the subcommand's words
    arguments: list[str]  # the other arguments it needs
    option: str
    value: str
    message: str


def rows_for(command: str, arguments: list[str], option: str, cases: dict[str, str]) -> list[Row]:
    return [Row(command, arguments, option, value, message) for value, message in cases.items()]


def at_least(option: str, low: int, *values: str) -> dict[str, str]:
    return {value: f"{option} must be at least {low}, not {value}" for value in values}


def positive(option: str) -> dict[str, str]:
    values = ("0", "-1", "nan", "inf")
    return {value: f"{option} must be a positive number, not {float(value)}" for value in values}


SEED = at_least("--seed", 0, "-1", "-5")
STATED = ["--rater-sd", "1", "--sample-sd", "1", "--residual-sd", "1"]  # plan's components
ONE = ("0", "-1")

COMMAND_ROWS = [
    *rows_for("data demo", ["--out", OUT], "--seed", SEED),
    *rows_for(
        "data prepare vggsound",
        ["--csv", "list.csv", "--video-dir", "videos", "--out", OUT],
        "--workers",
        at_least("--workers", 1, *ONE),
    ),
    *rows_for(
        "data prepare speakers",
        ["--root", "voices", "--out", OUT],
        "--clip-seconds",
        positive("--clip-seconds"),
    ),
    *rows_for("run", ["--method", "sd-text", *RUN], "--seed", SEED),
    *rows_for(
        "run", ["--method", "sd-text", *RUN], "--batch-size", at_least("--batch-size", 1, *ONE)
    ),
    *rows_for("run", ["--method", "sd-text", *RUN], "--limit", at_least("--limit", 1, *ONE)),
    *rows_for("train", ["--method", "audiotoken", *RUN], "--seed", SEED),
    *rows_for("evaluate", [f"{OUT}/run"], "--batch-size", at_least("--batch-size", 1, *ONE)),
    *rows_for("evaluate", [f"{OUT}/run"], "--pool-size", at_least("--pool-size", 2, "1", "0")),
    *rows_for("evaluate", [f"{OUT}/run"], "--seed", SEED),
    *rows_for("evaluate", [f"{OUT}/run"], "--set-resamples", at_least("--set-resamples", 1, *ONE)),
    # --images would write a run directory before evaluating: the bound must come first
    *rows_for(
        "evaluate",
        ["--images", "images", "--data", DATA, "--out", OUT],
        "--batch-size",
        at_least("--batch-size", 1, "0"),
    ),
    *rows_for(
        "human-eval export",
        [f"{OUT}/run", "--out", OUT],
        "--per-method",
        at_least("--per-method", 1, *ONE),
    ),
    *rows_for("human-eval export", [f"{OUT}/run", "--out", OUT], "--seed", SEED),
    *rows_for(
        "human-eval export",
        [f"{OUT}/run", "--out", OUT],
        "--attention-checks",
        at_least("--attention-checks", 0, "-1"),
    ),
    *rows_for(
        "human-eval ingest",
        ["ratings.csv", "--key", "key.csv", "--out", f"{OUT}/ratings.csv"],
        "--max-failed-checks",
        at_least("--max-failed-checks", 0, "-1"),
    ),
    *(
        row
        for option in ("--items", "--raters", "--methods")
        for row in rows_for("human-eval plan", STATED, option, at_least(option, 2, "1", "0"))
    ),
    *rows_for("human-eval plan", STATED, "--target-width", positive("--target-width")),
    *(
        row
        for option in ("--difference", "--rater-sd", "--sample-sd", "--residual-sd")
        for row in rows_for("human-eval plan", STATED, option, at_least(option, 0, "-1.0"))
    ),
    *rows_for("human-eval plan", STATED, "--seed", SEED),
]

# method -> (option, bad value, message); every bounded field of every built-in method
METHOD_OPTIONS = {
    "sd-text": [
        ("steps", "0", "option steps must be at least 1, not 0"),
        ("steps", "-3", "option steps must be at least 1, not -3"),
        ("guidance_scale", "nan", "option guidance_scale takes a finite number, not 'nan'"),
        ("guidance_scale", "inf", "option guidance_scale takes a finite number, not 'inf'"),
        ("guidance_scale", "-1", "option guidance_scale must be at least 0, not -1.0"),
    ],
    "audiotoken": [
        ("steps", "0", "option steps must be at least 1, not 0"),
        ("guidance_scale", "-0.5", "option guidance_scale must be at least 0, not -0.5"),
        ("audio_seconds", "0", "option audio_seconds must be a positive number, not 0.0"),
        ("audio_seconds", "nan", "option audio_seconds takes a finite number, not 'nan'"),
    ],
    "imagebind-unclip": [
        ("noise_level", "-1", "option noise_level must be at least 0 and at most 999, not -1"),
        ("noise_level", "1000", "option noise_level must be at least 0 and at most 999, not 1000"),
        ("steps", "0", "option steps must be at least 1, not 0"),
        ("guidance_scale", "-1", "option guidance_scale must be at least 0, not -1.0"),
    ],
    "wav2clip-vqgan": [
        ("steps", "0", "option steps must be at least 1, not 0"),
        ("lr", "0", "option lr must be a positive number, not 0.0"),
        ("lr", "-0.1", "option lr must be a positive number, not -0.1"),
        ("cutn", "0", "option cutn must be at least 1, not 0"),
        ("size", "0", "option size must be at least 16 and a multiple of 16, not 0"),
        ("size", "500", "option size must be at least 16 and a multiple of 16, not 500"),
        ("cut_pow", "-1", "option cut_pow must be at least 0, not -1.0"),
    ],
}
# method -> (training option, bad value, message); every bounded field of every TrainConfig
TRAIN_OPTIONS = {
    "audiotoken": [
        ("steps", "0", "option steps must be at least 1, not 0"),
        ("batch_size", "0", "option batch_size must be at least 1, not 0"),
        ("grad_accum", "-1", "option grad_accum must be at least 1, not -1"),
        ("lr", "0", "option lr must be a positive number, not 0.0"),
        ("lr", "nan", "option lr takes a finite number, not 'nan'"),
        ("checkpoint_every", "0", "option checkpoint_every must be at least 1, not 0"),
    ],
}
METHOD_ROWS = [
    Row(command, ["--method", method, *RUN], "--set", f"{key}={value}", message)
    for command, options in (("run", METHOD_OPTIONS), ("train", TRAIN_OPTIONS))
    for method, cases in options.items()
    for key, value, message in cases
]
ROWS = COMMAND_ROWS + METHOD_ROWS


def snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    """Every path under the roots with its size and modification time."""
    return {
        path: (path.stat().st_size, path.stat().st_mtime_ns)
        for root in roots
        for path in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{row.command} {row.option} {row.value}" for row in ROWS]
)
def test_a_bad_value_is_one_line_exit_2_and_writes_nothing(row, demo_dir, tmp_path, cli):
    places = {DATA: str(demo_dir), OUT: str(tmp_path / "out")}
    arguments = [places.get(a, a.replace(OUT, places[OUT])) for a in row.arguments]
    before = snapshot(tmp_path, demo_dir)
    code, _, err = cli(*row.command.split(), *arguments, row.option, row.value)
    assert code == 2 and err.count("\n") == 1 and err.strip(), err
    assert row.message in err
    assert snapshot(tmp_path, demo_dir) == before


def numeric_options(command, words: tuple[str, ...] = ()):
    """(subcommand words, option, parameter) of every int or float option in typer's tree."""
    for name, sub in getattr(command, "commands", {}).items():
        yield from numeric_options(sub, (*words, name))
    for param in command.params:
        if param.type_descriptor.annotation in (int, float):
            yield " ".join(words), param.opts[0], param


def test_every_numeric_option_is_bounded_and_covered_by_a_row():
    tree = typer.main.get_command(app)
    found = list(numeric_options(tree))
    assert found, "no numeric options found: the tree walk is broken"
    unbounded = [f"{command} {option}" for command, option, param in found if not param.callback]
    assert not unbounded, f"numeric options without bounds: {unbounded}"
    covered = {(row.command, row.option) for row in COMMAND_ROWS}
    missing = [f"{c} {o}" for c, o, _ in found if (c, o) not in covered]
    assert not missing, f"numeric options without a row here: {missing}"


@pytest.mark.parametrize(
    ("config_of", "options"),
    [(lambda method: method.Config, METHOD_OPTIONS), (lambda m: m.TrainConfig, TRAIN_OPTIONS)],
    ids=["Config", "TrainConfig"],
)
def test_every_numeric_method_option_is_bounded_and_covered_by_a_row(config_of, options):
    configs = {name: config_of(info.load()) for name, info in discover().items()}
    covered = {(configs[name], key) for name, cases in options.items() for key, *_ in cases}
    for name, config in configs.items():
        for field in dataclasses.fields(config) if config is not None else ():
            if field.type not in ("int", "float"):
                continue
            bounds = field.metadata.get(METADATA_KEY)
            assert isinstance(bounds, Bounds), f"{name}: option {field.name} has no bounds"
            assert bounds.admits(field.default), f"{name}: the default of {field.name}"
            assert (config, field.name) in covered, f"{name}: no row for {field.name}"


@dataclasses.dataclass(frozen=True)
class _Options:
    steps: int = bounded(50, low=1)


class _Bounded(Method):
    description = "a method with one bounded option"
    Config = _Options

    def setup(self, context):
        pass

    def generate(self, inputs, seeds):
        return []


def test_a_config_built_in_python_is_checked_when_the_method_is_made():
    assert build_config(_Bounded.Config, {"steps": "1"}) == _Options(steps=1)
    with pytest.raises(AudiobenchError, match="option steps must be at least 1, not 0"):
        _Bounded(_Options(steps=0))
