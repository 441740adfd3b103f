"""`leaderboard add` is idempotent and `render` names its file (issue 20).

A run is identified on the board by the digest of its results: the same run added again, in
the same call, from a copy or with new timestamps leaves one row and the file's bytes as they
were; a run whose results changed in any way the digest covers is a new row, with a note.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from audiobench import leaderboard
from audiobench.errors import AudiobenchError
from tests.test_leaderboard_schema import SCHEMA, accepted_by_validate, conforms, good_board


def make_run(root: Path, name: str = "audiotoken-test-paper-seed0") -> Path:
    """An evaluated run as `run` and `evaluate` write it, with the fields the digest reads and
    the ones (times, paths, versions, hosts) it must not."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    dataset = {"dataset_sha256": "1" * 64, "inputs_sha256": "2" * 64}
    images = {"count": 4, "sha256": "3" * 64}
    record = {
        "method": "audiotoken",
        "profile": "paper",
        "split": "test",
        "seed": 0,
        "method_config": {"steps": 50},
        "checkpoint": None,
        "created": "2026-01-01T00:00:00+00:00",
        "dataset": "/data/vggsound",
        "images": images,
        "versions": {"audiobench": "0.1.0"},
        **dataset,
    }
    metrics = {
        "profile": "paper",
        "evaluated": "2026-01-02T00:00:00+00:00",
        "dataset": {**dataset, "path": "/data/vggsound", "split": "test"},
        "images": images,
        "models": [{"role": "inception", "sha256": "4" * 64, "path": "/weights/inception"}],
        "metrics": {
            name: {"value": value, "n": 4, "ci95": [value - 1, value + 1], "config": {}}
            for name, value in (("aic", 45.5), ("fid", 56.25), ("ais", 68.0), ("iis", 76.75))
        },
    }
    write(run_dir / "run.json", record)
    write(run_dir / "metrics.json", metrics)
    return run_dir


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2))


def edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    write(path, document)


def audiobench_rows(board_file: Path) -> list[dict[str, Any]]:
    rows = json.loads(board_file.read_text())["rows"]
    return [row for row in rows if row["source"] == "audiobench"]


def test_adding_a_run_twice_leaves_one_row_and_the_file_untouched(tmp_path, cli):
    run, board = make_run(tmp_path), tmp_path / "board.json"
    code, out, err = cli("leaderboard", "add", run, "--file", board)
    assert code == 0 and "7 rows (1 added)" in out and err == "", err
    first = board.read_bytes()
    code, out, err = cli("leaderboard", "add", run, "--file", board)
    assert code == 0 and "7 rows (0 added)" in out
    assert f"note: {run}: already on the board" in err and "not added again" in err
    assert board.read_bytes() == first
    [row] = audiobench_rows(board)
    assert row["digest"] == leaderboard.results_digest(
        json.loads((run / "run.json").read_text()), json.loads((run / "metrics.json").read_text())
    )


def test_the_same_run_twice_in_one_call_is_one_row(tmp_path):
    run, board = make_run(tmp_path), tmp_path / "board.json"
    addition = leaderboard.add_runs(board, [run, run])
    assert addition.added == 1 and len(addition.notes) == 1
    assert "already on the board" in addition.notes[0]
    assert len(audiobench_rows(board)) == 1


def test_a_copy_with_other_times_paths_and_versions_is_the_same_results(tmp_path):
    """The digest is of the results, not of when, where or with which audiobench they were made:
    a run folder copied to another machine and evaluated again to the same numbers matches."""
    run, board = make_run(tmp_path), tmp_path / "board.json"
    leaderboard.add_runs(board, [run])
    moved = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, moved)
    edit(moved / "run.json", lambda r: r.update(created="2027-05-05", dataset="/mnt/vgg"))
    edit(moved / "run.json", lambda r: r["versions"].update(audiobench="9.9"))
    edit(moved / "metrics.json", lambda m: m.update(evaluated="2027-05-06T00:00:00+00:00"))
    edit(moved / "metrics.json", lambda m: m["dataset"].update(path="/mnt/vgg"))
    edit(moved / "metrics.json", lambda m: m["models"][0].update(path="/other/weights"))
    before = board.read_bytes()
    addition = leaderboard.add_runs(board, [moved])
    assert addition.added == 0 and board.read_bytes() == before


CHANGES = {
    "a metric's value": ("metrics.json", lambda m: m["metrics"]["aic"].update(value=45.75)),
    "a metric's interval": ("metrics.json", lambda m: m["metrics"]["fid"].update(ci95=[50, 60])),
    "a new metric": ("metrics.json", lambda m: m["metrics"].update(extra={"value": 1.0})),
    "the images": ("metrics.json", lambda m: m["images"].update(sha256="5" * 64)),
    "the dataset": ("metrics.json", lambda m: m["dataset"].update(inputs_sha256="6" * 64)),
    "a metric model": ("metrics.json", lambda m: m["models"][0].update(sha256="7" * 64)),
    "the seed": ("run.json", lambda r: r.update(seed=1)),
    "the method's options": ("run.json", lambda r: r["method_config"].update(steps=25)),
    "the checkpoint": ("run.json", lambda r: r.update(checkpoint="step-100")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_changed_results_are_a_new_row_beside_the_old_one(tmp_path, cli, change):
    run, board = make_run(tmp_path), tmp_path / "board.json"
    assert cli("leaderboard", "add", run, "--file", board)[0] == 0
    name, edit_document = CHANGES[change]
    edit(run / name, edit_document)
    code, out, err = cli("leaderboard", "add", run, "--file", board)
    assert code == 0 and "8 rows (1 added)" in out
    assert "results differ from the 1 'AudioToken' row(s) already on the board" in err
    assert f"delete a stale row from {board}" in err
    old, new = audiobench_rows(board)
    assert old["digest"] != new["digest"]
    assert cli("leaderboard", "add", run, "--file", board)[0] == 0  # and now it is on the board
    assert len(audiobench_rows(board)) == 2


def test_a_run_of_another_method_gets_no_note(tmp_path):
    board = tmp_path / "board.json"
    leaderboard.add_runs(board, [make_run(tmp_path)])
    other = make_run(tmp_path, "sd-text-test-paper-seed0")
    edit(other / "run.json", lambda r: r.update(method="sd-text"))
    addition = leaderboard.add_runs(board, [other])
    assert addition.added == 1 and addition.notes == []


def test_a_metrics_file_linked_out_of_the_run_is_refused(tmp_path):
    run, board = make_run(tmp_path), tmp_path / "board.json"
    outside = tmp_path / "outside.json"
    (run / "metrics.json").rename(outside)
    (run / "metrics.json").symlink_to(outside)
    with pytest.raises(AudiobenchError, match="symbolic link"):
        leaderboard.add_runs(board, [run])
    assert not board.exists()


@pytest.mark.parametrize(("digest", "valid"), [("ab" * 32, True), (5, False), (None, False)])
def test_the_digest_field_is_in_the_schema(digest, valid):
    board = copy.deepcopy(good_board())
    board["rows"][2]["digest"] = digest
    assert conforms(board, SCHEMA) is valid and accepted_by_validate(board) is valid


def test_render_names_the_file_it_read(tmp_path, cli):
    board = tmp_path / "x.json"
    board.write_text(json.dumps(leaderboard.new_board()))
    code, out, _ = cli("leaderboard", "render", "--file", board)
    assert code == 0 and out.startswith("Generated by `audiobench leaderboard render` from x.json;")
    code, _, _ = cli("leaderboard", "render", "--file", board, "--out", tmp_path / "x.md")
    assert code == 0 and " from x.json;" in (tmp_path / "x.md").read_text()
    code, out, _ = cli("leaderboard", "render")
    assert code == 0 and " from vggsound.json;" in out.splitlines()[0]
    assert "vggsound" not in leaderboard.render(leaderboard.new_board(), board)
