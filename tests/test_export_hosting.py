"""`human-eval export` on small runs and for hosted tools (issue 20).

The default `--per-method` adapts to the samples the runs share (the demo has 12, the paper rated
15), while a number asked for is kept to or refused with the number available. MTurk loads images
by URL: `--image-url-prefix` writes hosted URLs into its sheet (and the CSV sheet's and the Label
Studio tasks'), and without it MTurk's export says how to host the images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from audiobench.human_eval import export as exporting

from audiobench.runner import RunSettings, execute

PREFIX = "https://example.org/study/images"
NOTE_12 = "note: 12 samples shared by every run, fewer than --per-method 15: rating all 12"


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory) -> list[Path]:
    """A reference run of the demo's 12 test samples and a copy of it as a second method."""
    folder = tmp_path_factory.mktemp("hosting")
    settings = RunSettings(method="reference", data_dir=demo_dir, out=folder, profile="tiny")
    first = execute(settings).run_dir
    second = folder / "copy"
    shutil.copytree(first, second, ignore=shutil.ignore_patterns(".lock"))
    return [first, second]


def export(cli, runs, out, *options):
    return cli("human-eval", "export", *runs, "--out", out, "--attention-checks", 0, *options)


def rated_samples(out: Path) -> int:
    key = pd.read_csv(out / "key.csv")
    return key.sample_id[key.kind == "rating"].nunique()


def test_the_default_rates_every_shared_sample_when_there_are_fewer_than_15(runs, tmp_path, cli):
    code, _, err = export(cli, runs, tmp_path / "sheets")
    assert code == 0 and NOTE_12 in err
    assert rated_samples(tmp_path / "sheets") == 12


def test_the_default_counts_only_samples_every_run_has(runs, tmp_path, cli):
    partial = tmp_path / "partial"
    shutil.copytree(runs[1], partial, ignore=shutil.ignore_patterns(".lock"))
    table = pd.read_parquet(partial / "samples.parquet")
    table.loc[table.index[:5], "status"] = "failed"
    table.to_parquet(partial / "samples.parquet")
    code, _, err = export(cli, [runs[0], partial], tmp_path / "sheets")
    assert code == 0 and "note: 7 samples shared by every run" in err and "rating all 7" in err
    assert rated_samples(tmp_path / "sheets") == 7


def test_the_default_takes_the_papers_count_when_there_are_more(runs, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(exporting, "PER_METHOD", 5)  # the demo's 12 samples play a large split
    code, _, err = export(cli, runs, tmp_path / "sheets")
    assert code == 0 and "note:" not in err
    assert rated_samples(tmp_path / "sheets") == 5


def test_an_explicit_number_is_kept_to(runs, tmp_path, cli):
    code, _, err = export(cli, runs, tmp_path / "sheets", "--per-method", 12)
    assert code == 0 and "note:" not in err and rated_samples(tmp_path / "sheets") == 12
    out = tmp_path / "more"
    code, _, err = export(cli, runs, out, "--per-method", 15)
    assert code == 2 and err.count("\n") == 1
    assert "the runs share 12 generated samples, fewer than --per-method 15" in err
    assert "pass --per-method 12" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("output_format", "sheet", "column"),
    [("mturk", "mturk_batch.csv", "image_url"), ("csv", "sheet.csv", "image")],
)
def test_the_prefix_reaches_every_image_of_a_csv(runs, tmp_path, cli, output_format, sheet, column):
    out = tmp_path / "sheets"
    options = ("--format", output_format, "--image-url-prefix", PREFIX)
    code, _, err = export(cli, runs, out, "--per-method", 4, *options)
    assert code == 0 and "--image-url-prefix" not in err
    table = pd.read_csv(out / sheet)
    assert len(table) == 8
    assert list(table[column]) == [f"{PREFIX}/{item}.png" for item in table.item_id]
    assert all((out / "images" / f"{item}.png").is_file() for item in table.item_id)


def test_the_prefix_reaches_every_label_studio_task(runs, tmp_path, cli):
    out = tmp_path / "sheets"
    options = ("--format", "labelstudio", "--image-url-prefix", PREFIX + "/")
    assert export(cli, runs, out, "--per-method", 4, *options)[0] == 0
    tasks = [task["data"] for task in json.loads((out / "labelstudio_tasks.json").read_text())]
    assert len(tasks) == 8
    assert [task["image"] for task in tasks] == [f"{PREFIX}/{t['item_id']}.png" for t in tasks]


def test_urls_percent_encode_the_file_name_and_keep_a_query_prefix():
    """Label Studio's local files are served as /data/local-files/?d=<path>."""
    local = "http://localhost:8080/data/local-files/?d=study/images/"
    assert exporting.image_reference("item-1", local) == local + "item-1.png"
    assert exporting.image_reference("a b#?%", PREFIX) == f"{PREFIX}/a%20b%23%3F%25.png"
    assert exporting.image_reference("item-1", None) == "images/item-1.png"


@pytest.mark.parametrize(
    "prefix",
    [
        "ftp://example.org/images/",
        "file:///tmp/images/",
        "images/",
        "/srv/images",
        "javascript:alert(1)",
        "https://",
        "https://example.org/my images/",
        'https://example.org/"><script>/',
        "https://example.org/images/#top",
        "https://example.org/\n=1",
        "https://[::1/images/",
    ],
)
def test_other_prefixes_are_refused_in_one_line(runs, tmp_path, cli, prefix):
    out = tmp_path / "sheets"
    code, _, err = export(cli, runs, out, "--format", "mturk", "--image-url-prefix", prefix)
    assert code == 2 and err.count("\n") == 1
    assert "--image-url-prefix must be the http(s) URL" in err and repr(prefix) in err
    assert not out.exists()


def test_the_html_form_refuses_a_prefix(runs, tmp_path, cli):
    code, _, err = export(cli, runs, tmp_path / "sheets", "--image-url-prefix", PREFIX)
    assert code == 2 and "the html form embeds its images" in err


def test_mturk_without_a_prefix_says_how_to_host(runs, tmp_path, cli):
    out = tmp_path / "sheets"
    code, _, err = export(cli, runs, out, "--per-method", 4, "--format", "mturk")
    assert code == 0
    assert "note: MTurk loads each image from a URL" in err
    assert f"upload {out / 'images'} to a web host" in err and "--image-url-prefix" in err


@pytest.mark.parametrize("output_format", ["html", "csv", "labelstudio"])  # Label Studio: embedded
def test_offline_formats_need_no_hosting(runs, tmp_path, cli, output_format):
    code, _, err = export(cli, runs, tmp_path / "s", "--per-method", 4, "--format", output_format)
    assert code == 0 and err == ""
