"""Human evaluation: blinded export, ingest of every response format, and the statistics."""

from __future__ import annotations

import json
import time
import warnings
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from audiobench.human_eval.analyze import analyze, holm, table
from audiobench.human_eval.export import build_items, export
from audiobench.human_eval.ingest import ingest
from scipy.stats import mannwhitneyu

from audiobench.errors import AudiobenchError


def test_export_is_deterministic_balanced_and_blinded(rated_runs, tmp_path):
    items = build_items(rated_runs, per_method=5, seed=3, attention_checks=2)
    assert items == build_items(rated_runs, per_method=5, seed=3, attention_checks=2)
    assert items != build_items(rated_runs, per_method=5, seed=4, attention_checks=2)
    rated = [item for item in items if item.kind == "rating"]
    by_method = {
        m: sorted(i.sample_id for i in rated if i.method == m) for m in ("reference", "sd-text")
    }
    assert len(by_method["reference"]) == 5 and by_method["reference"] == by_method["sd-text"]
    assert sum(item.kind == "check-true" for item in items) == 2
    assert sum(item.kind == "check-wrong" for item in items) == 2
    assert len({item.item_id for item in items}) == len(items) == 14
    for output_format in ("html", "csv", "mturk", "labelstudio"):
        sheet = export(items, tmp_path / output_format, output_format)
        text = sheet.read_text()
        for secret in ("sd-text", "reference", str(rated_runs[0]), "seed0"):
            assert secret not in text, (output_format, secret)
    key = pd.read_csv(tmp_path / "html" / "key.csv")
    assert set(key.columns) >= {"item_id", "method", "run_dir", "sample_id", "label", "kind"}
    assert len(list((tmp_path / "csv" / "images").glob("*.png"))) == 14
    config = (tmp_path / "labelstudio" / "labelstudio_config.xml").read_text()
    assert '<Rating name="rating" toName="image" maxRating="5" required="true"/>' in config


def test_labels_are_escaped_in_the_form(rated_runs, tmp_path):
    items = build_items(rated_runs, per_method=2, seed=0, attention_checks=0)
    evil = [type(item)(**{**item.__dict__, "label": "<script>alert(1)</script>"}) for item in items]
    page = export(evil, tmp_path, "html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def responses_for(key: pd.DataFrame, rater: str, rating_of) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rater": rater,
            "item_id": key.item_id,
            "rating": [rating_of(row) for row in key.itertuples()],
        }
    )


def honest(row):
    return {"check-true": 5, "check-wrong": 1}.get(row.kind, 4 if row.method == "reference" else 2)


def test_ingest_every_format_and_drop_careless_raters(rated_runs, tmp_path):
    items = build_items(rated_runs, per_method=4, seed=0, attention_checks=1)
    export(items, tmp_path / "sheets", "html")
    key = pd.read_csv(tmp_path / "sheets" / "key.csv")
    form = tmp_path / "form.csv"
    responses_for(key, "ann", honest).assign(shown_at="t0", answered_at="t1").to_csv(
        form, index=False
    )
    careless = tmp_path / "careless.csv"
    responses_for(key, "bob", lambda row: 3).to_csv(careless, index=False)
    mturk = tmp_path / "mturk.csv"
    pd.DataFrame(
        {
            "WorkerId": "W1",
            "Input.item_id": key.item_id,
            "Answer.rating": [honest(row) for row in key.itertuples()],
        }
    ).to_csv(mturk, index=False)
    studio = tmp_path / "export.json"
    studio.write_text(
        json.dumps(
            [
                {
                    "data": {"item_id": row.item_id},
                    "annotations": [
                        {
                            "completed_by": 7,
                            "result": [{"type": "rating", "value": {"rating": honest(row)}}],
                        }
                    ],
                }
                for row in key.itertuples()
            ]
        )
    )
    result = ingest([form, careless, mturk, studio], tmp_path / "sheets" / "key.csv")
    assert result.dropped_raters == ["bob"]
    assert set(result.ratings.rater) == {"ann", "W1", "7"}
    assert list(result.ratings.columns) == [
        "rater",
        "item",
        "method",
        "sample",
        "label",
        "rating",
        "check",
    ]
    assert len(result.ratings) == 3 * len(key)
    lenient = ingest([careless], tmp_path / "sheets" / "key.csv", max_failed_checks=2)
    assert lenient.dropped_raters == []


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("ann", "ITEM", "6")], "not an integer from 1 to 5"),
        ([("ann", "ITEM", "x")], "not an integer from 1 to 5"),
        ([("ann", "item-nope", "3")], "items not in"),
        ([("ann", "ITEM", "3"), ("ann", "ITEM", "4")], "rated item .* more than once"),
    ],
)
def test_ingest_rejects_malformed_responses(rated_runs, tmp_path, rows, message):
    items = build_items(rated_runs, per_method=2, seed=0, attention_checks=0)
    export(items, tmp_path / "sheets", "csv")
    rows = [(r, items[0].item_id if i == "ITEM" else i, v) for r, i, v in rows]
    pd.DataFrame(rows, columns=["rater", "item_id", "rating"]).to_csv(
        tmp_path / "r.csv", index=False
    )
    with pytest.raises(AudiobenchError, match=message):
        ingest([tmp_path / "r.csv"], tmp_path / "sheets" / "key.csv")


def synthetic_ratings(seed=0):
    """20 raters x 30 items of three methods with known means (good 4, mid 3, bad 2)."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(30):
        method = ("good", "mid", "bad")[item % 3]
        centre = {"good": 4, "mid": 3, "bad": 2}[method]
        for rater in range(20):
            rating = int(np.clip(centre + rng.integers(-1, 2), 1, 5))
            rows.append((f"r{rater}", f"i{item}", method, f"s{item}", "x", rating, "rating"))
    rows.append(("r0", "check", "attention-check", "s0", "x", 5, "check-true"))
    return pd.DataFrame(
        rows, columns=["rater", "item", "method", "sample", "label", "rating", "check"]
    )


def test_analysis_equals_an_independent_computation():
    ratings = synthetic_ratings()
    result = analyze(ratings, n_resamples=300)
    rated = ratings[ratings.check == "rating"]
    for method, group in rated.groupby("method"):
        stats = result["methods"][method]
        assert stats["mean"] == pytest.approx(group.rating.mean())
        assert stats["std"] == pytest.approx(group.rating.std(ddof=1))
        assert stats["n_ratings"] == 200 and stats["min_ratings_per_item"] == 20
        for interval in ("ci95_cluster", "ci95_naive"):
            low, high = stats[interval]
            assert low < group.rating.mean() < high
    matrix = rated.pivot_table("rating", "rater", "item").to_numpy(float)
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    alpha = result["krippendorff_alpha_ordinal"]
    assert alpha["value"] == pytest.approx(expected_alpha)
    assert alpha["ci95"][0] < alpha["value"] < alpha["ci95"][1]
    # item effects and rater noise have equal variance (2/3 each), so alpha is about 0.5
    assert 0.35 < alpha["value"] < 0.65
    pairs = list(combinations(sorted(result["methods"]), 2))
    raw = [
        mannwhitneyu(rated[rated.method == a].rating, rated[rated.method == b].rating).pvalue
        for a, b in pairs
    ]
    for comparison, p in zip(result["comparisons"], raw, strict=True):
        secondary = comparison["secondary_mann_whitney"]
        assert secondary["p"] == pytest.approx(p)
        assert secondary["p_holm"] >= secondary["p"] and secondary["p_holm"] < 1e-6
        # every item is its own sample here: nothing is shared, so there is no paired test
        assert comparison["n_samples"] == 0 and comparison["wilcoxon_p"] is None
    assert "| good | 4." in table(result) and "±" in table(result)


def test_a_table_without_attention_checks_is_analysed(tmp_path, cli):
    """Issue 17, item 12: no `check` column means every row is a rating; missing columns are a
    one-line error."""
    ratings = synthetic_ratings()
    rated = ratings[ratings.check == "rating"]
    without = rated.drop(columns=["check"])
    assert analyze(without, n_resamples=100) == analyze(ratings, n_resamples=100)
    path = tmp_path / "ratings.csv"
    without.to_csv(path, index=False)
    code, out, err = cli("human-eval", "analyze", path, "--json")
    assert code == 0 and '"good"' in out, err
    without.drop(columns=["method"]).to_csv(path, index=False)
    code, _, err = cli("human-eval", "analyze", path)
    assert code == 2 and err.count("\n") == 1 and "lacks the columns method" in err


def test_holm_correction_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_too_few_ratings_per_item_are_flagged():
    ratings = synthetic_ratings()
    few = ratings[(ratings.rater.isin(["r0", "r1"])) | (ratings.item != "i0")]
    result = analyze(few, n_resamples=100)
    assert result["methods"]["good"]["items_below_17"] == 1
    assert "(< 17)" in table(result)


def test_cli_round_trip(rated_runs, tmp_path, cli):
    code, out, _ = cli(
        "human-eval",
        "export",
        *rated_runs,
        "--out",
        tmp_path / "sheets",
        "--per-method",
        "4",
        "--format",
        "csv",
    )
    assert code == 0 and "items" in out
    key = pd.read_csv(tmp_path / "sheets" / "key.csv")
    for rater in ("a", "b", "c"):
        responses_for(key, rater, honest).to_csv(tmp_path / f"{rater}.csv", index=False)
    code, _, _ = cli(
        "human-eval",
        "ingest",
        *(tmp_path / f"{r}.csv" for r in "abc"),
        "--key",
        tmp_path / "sheets" / "key.csv",
        "--out",
        tmp_path / "ratings.csv",
    )
    assert code == 0
    code, out, _ = cli(
        "human-eval", "analyze", tmp_path / "ratings.csv", "--out", tmp_path / "analysis"
    )
    assert code == 0 and "reference" in out and "Krippendorff" in out
    assert (tmp_path / "analysis" / "ratings.png").read_bytes().startswith(b"\x89PNG")


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

# Records every blob the page turns into a download link, so the test reads exactly the bytes the
# form hands to the browser, whether or not this machine's Chromium saves them to disk in time
# (CI machines without network can stall Chromium's download checks)
CAPTURE_DOWNLOADS = """
window.capturedBlobs = [];
const createObjectURL = URL.createObjectURL;
URL.createObjectURL = blob => { window.capturedBlobs.push(blob); return createObjectURL(blob); };
"""
READ_CAPTURED = """
const done = arguments[arguments.length - 1];
Promise.all(window.capturedBlobs.map(blob => blob.text())).then(done);
"""


def headless_chromium(downloads: Path, profile: Path):
    """A headless Chromium that saves downloads into `downloads` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--safebrowsing-disable-download-protection",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
def test_the_form_is_filled_in_a_real_browser_and_its_csv_ingests(rated_runs, tmp_path):
    from selenium.webdriver.common.by import By

    items = build_items(rated_runs, per_method=3, seed=0, attention_checks=1)
    form = export(items, tmp_path / "sheets", "html")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = headless_chromium(downloads, tmp_path / "profile")
    try:
        driver.get(form.as_uri())
        driver.execute_script(CAPTURE_DOWNLOADS)
        driver.find_element(By.ID, "download").click()
        assert "rater id" in driver.find_element(By.ID, "error").text  # nothing is sent unrated
        driver.find_element(By.ID, "rater").send_keys("browser-rater")
        driver.find_element(By.ID, "download").click()
        assert "Please rate item 1" in driver.find_element(By.ID, "error").text
        key = pd.read_csv(tmp_path / "sheets" / "key.csv").set_index("item_id")
        for index in range(len(items)):
            current = driver.find_element(By.CSS_SELECTOR, ".item.current")
            row = key.loc[current.get_attribute("data-item")]
            current.find_element(By.CSS_SELECTOR, f'input[value="{honest(row)}"]').click()
            progress = driver.find_element(By.ID, "progress").text
            assert f"Item {index + 1} of {len(items)} ({index + 1} rated)" in progress
            driver.find_element(By.ID, "next").click()
        driver.find_element(By.ID, "download").click()
        assert driver.find_element(By.ID, "error").text == ""
        [csv_text] = driver.execute_async_script(READ_CAPTURED)
        link_name = driver.execute_script("return document.querySelector('a[download]').download")
        saved = downloads / link_name
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not saved.exists():
            time.sleep(0.1)
    finally:
        driver.quit()
    assert link_name == "ratings-browser-rater.csv"
    if saved.exists():
        assert saved.read_text() == csv_text
    else:
        warnings.warn(
            f"Chromium did not save {link_name} within 30 s; checked the page's CSV only",
            stacklevel=1,
        )
    sheet = tmp_path / link_name
    sheet.write_text(csv_text)
    result = ingest([sheet], tmp_path / "sheets" / "key.csv")
    assert result.dropped_raters == [] and set(result.ratings.rater) == {"browser-rater"}
    assert len(result.ratings) == len(items)
    assert (pd.read_csv(sheet).answered_at.str.len() > 10).all()  # timestamps recorded
