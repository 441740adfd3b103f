"""Run folders from strangers and option values typed wrong (issue 17, items 1 and 9)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.test_evaluation import make_run


@pytest.fixture(scope="module")
def run(demo_dir, tmp_path_factory):
    return make_run(demo_dir, tmp_path_factory.mktemp("runs"), "sd-text", steps="2")


@pytest.fixture
def copy(run, tmp_path):
    target = tmp_path / run.name
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("metrics.json", ".lock"))
    return target


def test_a_symlinked_lock_is_refused_and_its_target_untouched(copy, demo_dir, tmp_path, cli):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (copy / ".lock").symlink_to(victim)
    code, _, err = cli("evaluate", copy, "--metrics", "iis", "--profile", "tiny")
    assert code == 2 and ".lock is a symbolic link" in err
    code, _, err = cli(
        "run", "--method", "sd-text", "--data", demo_dir, "--profile", "tiny",
        "--out", copy.parent, "--set", "steps=2", "--batch-size", "4",
    )  # fmt: skip
    assert code == 2 and ".lock is a symbolic link" in err
    assert victim.read_text() == "precious"
    assert not (copy / "metrics.json").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--pool-size", "1", "--pool-size must be at least 2, not 1"),
        ("--pool-size", "0", "--pool-size must be at least 2, not 0"),
        ("--batch-size", "0", "--batch-size must be at least 1, not 0"),
        ("--set-resamples", "0", "--set-resamples must be at least 1, not 0"),
        ("--seed", "-5", "--seed must be at least 0, not -5"),
    ],
)
def test_evaluate_bounds_are_one_line_errors_that_write_nothing(copy, cli, option, value, message):
    before = pd.read_parquet(copy / "samples.parquet")
    code, _, err = cli("evaluate", copy, "--profile", "tiny", option, value)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (copy / "metrics.json").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "samples.parquet"), before)


def test_evaluations_merge_and_replace_drops_the_old_columns(copy, cli):
    for metrics in ("iis", "aic"):
        code, _, err = cli("evaluate", copy, "--metrics", metrics, "--profile", "tiny")
        assert code == 0, err
    merged = json.loads((copy / "metrics.json").read_text())
    assert set(merged["metrics"]) == {"iis", "aic"}
    assert {model["role"] for model in merged["models"]} >= {"clip_l14", "classifier"}
    code, out, _ = cli("verify", copy)
    assert code == 0 and "consistent" in out

    code, _, err = cli("evaluate", copy, "--metrics", "fid", "--profile", "tiny", "--replace")
    assert code == 0, err
    assert set(json.loads((copy / "metrics.json").read_text())["metrics"]) == {"fid"}
    columns = set(pd.read_parquet(copy / "samples.parquet").columns)
    assert not columns & {"iis_win", "aic_agree", "aic_prediction"}

    code, _, _ = cli("evaluate", copy, "--metrics", "iis", "--profile", "tiny", "--seed", "1")
    assert code == 0  # other settings: the fid of seed 0 cannot stand beside it
    assert set(json.loads((copy / "metrics.json").read_text())["metrics"]) == {"iis"}

    table = pd.read_parquet(copy / "samples.parquet")
    table["ais_win"] = 0.5  # a column left behind by no recorded metric
    table.to_parquet(copy / "samples.parquet")
    code, out, _ = cli("verify", copy)
    assert code == 1 and "ais_win" in out


@pytest.mark.parametrize("metric", ["52.1", 52.1, [52.1], {"value": "52.1"}, {"value": True}])
@pytest.mark.parametrize("command", ["render", "add"])
def test_leaderboard_metric_values_of_the_wrong_type_are_refused(tmp_path, cli, metric, command):
    """Item 10: a string, a bare number or a list in place of a metric object is one line naming
    the file and the entry, and neither `render` nor `add` writes anything."""
    from audiobench import leaderboard
    from tests.test_report import VALUES
    from tests.test_report import make_run as make_evaluated_run

    board = leaderboard.new_board()
    board["rows"][0]["metrics"]["aic"] = metric
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board))
    before = path.read_bytes()
    if command == "render":
        arguments = ["render", "--file", path, "--out", tmp_path / "b.md"]
    else:
        run_dir = make_evaluated_run(tmp_path / "runs", "audiotoken", VALUES["audiotoken"])
        arguments = ["add", run_dir, "--file", path]
    code, _, err = cli("leaderboard", *arguments)
    assert code == 2 and err.count("\n") == 1, err
    assert f'{path} is not a valid leaderboard: rows[0].metrics["aic"]' in err
    assert path.read_bytes() == before and not (tmp_path / "b.md").exists()


def test_hostile_names_cannot_break_a_markdown_table(tmp_path):
    """Item 8 (markdown): pipes, newlines and markup in a row name stay inside their cell."""
    from audiobench import leaderboard

    board = leaderboard.new_board()
    board["rows"][0]["name"] = "evil | row\n| injected | <img src=x> **bold**"
    table = leaderboard.render(board)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(board["rows"])
    cells = {line.count("|") - line.count("\\|") for line in lines}
    assert len(cells) == 1  # every row has the header's number of cells
    assert "\\<img" in table and " <img" not in table and "**bold**" not in table


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", "--method", "sd-text", "--set", "guidance_scale=nan"], "finite number"),
        (["run", "--method", "sd-text", "--set", "guidance_scale=inf"], "finite number"),
        (["train", "--method", "audiotoken", "--set", "lr=nan"], "option lr takes a finite"),
        (["train", "--method", "audiotoken", "--set", "lr=0"], "option lr must be a positive"),
        (["human-eval", "export", "{run}", "--per-method", "0"], "--per-method must be at least 1"),
    ],
)
def test_bad_option_values_are_one_line_errors(run, demo_dir, tmp_path, cli, arguments, message):
    """Issue 17, item 11 (part): each bad value exits 2 with one line and writes nothing."""
    out = tmp_path / "out"
    arguments = [str(run) if a == "{run}" else a for a in arguments]
    if arguments[0] in ("run", "train"):
        arguments += ["--data", str(demo_dir), "--profile", "tiny"]
    code, _, err = cli(*arguments, "--out", out)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()
