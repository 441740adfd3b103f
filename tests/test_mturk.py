"""MTurk's route (issue 21): the layout (`mturk_template.html`, pasted into the requester site's
HTML editor) is a Crowd HTML Elements form filled from the batch CSV; every variable it uses is a
batch column, whose cells are escaped for it; hosted image URLs are absolute; and the results CSV
MTurk returns for it ingests."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from audiobench.human_eval.export import build_items, export

from audiobench.runner import RunSettings, execute

PREFIX = "https://example.org/study/images/"
VARIABLE = re.compile(r"\$\{(\w+)\}")  # how MTurk's layouts name a batch column


class Elements(HTMLParser):
    """The start tags of a page with their attributes, and its text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attributes for name, attributes in self.tags if name == tag]


@pytest.fixture(scope="module")
def run(demo_dir, tmp_path_factory) -> Path:
    settings = RunSettings(
        method="reference", data_dir=demo_dir, out=tmp_path_factory.mktemp("mturk"), profile="tiny"
    )
    return execute(settings).run_dir


@pytest.fixture(scope="module")
def sheets(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sheets") / "sheets"
    export(build_items([run], per_method=4, seed=0, attention_checks=1), out, "mturk", PREFIX)
    return out


def batch(sheets: Path) -> pd.DataFrame:
    """The batch as MTurk reads it: every cell as it is."""
    return pd.read_csv(sheets / "mturk_batch.csv", dtype=str, keep_default_na=False)


def fill(layout: str, row: pd.Series) -> str:
    """What MTurk shows a worker: the layout with `${column}` replaced by the row's cell."""
    return VARIABLE.sub(lambda match: row[match.group(1)], layout)


def test_the_layout_is_a_crowd_form_with_a_five_star_rating(sheets):
    layout = Elements((sheets / "mturk_template.html").read_text())
    assert {"src": "https://assets.crowd.aws/crowd-html-elements.js"} in layout.all("script")
    assert len(layout.all("crowd-form")) == 1
    assert layout.all("crowd-star-rating") == [
        {"name": "rating", "max-rating": "5", "required": None}
    ]


def test_every_variable_of_the_layout_is_a_batch_column(sheets):
    variables = set(VARIABLE.findall((sheets / "mturk_template.html").read_text()))
    assert variables == {"image_url", "label"}
    assert variables <= set(batch(sheets).columns)


def test_image_urls_are_absolute_with_a_prefix(sheets):
    table = batch(sheets)
    layout = (sheets / "mturk_template.html").read_text()
    for _, row in table.iterrows():
        [image] = Elements(fill(layout, row)).all("img")
        url = str(image["src"])
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", "example.org")
        assert url == f"{PREFIX}{row.item_id}.png"
        assert (sheets / "images" / f"{row.item_id}.png").is_file()


def test_labels_show_as_themselves_and_inject_nothing(run, tmp_path):
    labels = ['<img src=x onerror="alert(1)">', "dogs & cats <b>", 'it\'s "quoted"']
    items = build_items([run], per_method=3, seed=0, attention_checks=0)
    evil = [replace(item, label=labels[n]) for n, item in enumerate(items)]
    export(evil, tmp_path / "sheets", "mturk", PREFIX)
    layout = (tmp_path / "sheets" / "mturk_template.html").read_text()
    for (_, row), item in zip(batch(tmp_path / "sheets").iterrows(), evil, strict=True):
        shown = Elements(fill(layout, row))
        assert [image["src"] for image in shown.all("img")] == [f"{PREFIX}{item.item_id}.png"]
        assert shown.all("b") == [{}]  # the layout's own
        assert f"Label: {item.label}" in shown.text


def results_header(answer: str) -> list[str]:
    """The columns of a batch results CSV from MTurk's requester site, for this batch."""
    return [
        "HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime",
        "MaxAssignments", "RequesterAnnotation", "AssignmentDurationInSeconds",
        "AutoApprovalDelayInSeconds", "Expiration", "NumberOfSimilarHITs", "LifetimeInSeconds",
        "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime",
        "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback",
        "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate",
        "Last7DaysApprovalRate", "Input.item_id", "Input.image_url", "Input.label", answer,
        "Approve", "Reject",
    ]  # fmt: skip


WORKERS = ("A1EXAMPLE", "A2EXAMPLE")
STARS = {"rating": (4, 2), "check-true": (5, 4), "check-wrong": (1, 2)}  # by worker


def assignment(answer: str, number: int, worker: str, row: pd.Series, stars: int) -> dict:
    """One submitted assignment, as a row of the results CSV."""
    values = dict.fromkeys(results_header(answer), "")
    inputs = {f"Input.{column}": row[column] for column in ("item_id", "image_url", "label")}
    return {
        **values,
        **inputs,
        "HITId": f"3HIT{number:05d}",
        "AssignmentId": f"3ASSIGNMENT{number:05d}{worker}",
        "WorkerId": worker,
        "AssignmentStatus": "Submitted",
        answer: str(stars),
    }


def test_the_results_of_the_layout_ingest(sheets, tmp_path, cli):
    """Each worker's star rating comes back as `Answer.<the element's name>`."""
    [rating] = Elements((sheets / "mturk_template.html").read_text()).all("crowd-star-rating")
    answer = f"Answer.{rating['name']}"
    kinds = pd.read_csv(sheets / "key.csv").set_index("item_id").kind
    rows, expected = [], set()
    for number, (_, row) in enumerate(batch(sheets).iterrows()):
        for worker, stars in zip(WORKERS, STARS[kinds[row.item_id]], strict=True):
            rows.append(assignment(answer, number, worker, row, stars))
            expected.add((worker, row.item_id, stars))
    results = tmp_path / "Batch_1_batch_results.csv"
    with open(results, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, results_header(answer), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "ratings.csv"
    code, _, err = cli("human-eval", "ingest", results, "--key", sheets / "key.csv", "--out", out)
    assert code == 0, err
    tidy = pd.read_csv(out)
    assert {(r.rater, r.item, r.rating) for r in tidy.itertuples()} == expected
