"""`audiobench human-eval plan`: the simulated studies agree with the closed form, power behaves
as power must, the suggestion is the cheapest design meeting the target, and the command works
from a pilot made with known variance components."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audiobench.human_eval.plan import (
    Components,
    Design,
    closed_form_width,
    simulate,
    suggest,
)

from audiobench.escaping import markdown_cell

# unequal rater and sample variances, so a formula that swapped their roles would show
COMPONENTS = Components(rater=0.4**2, sample=0.6**2, residual=0.8**2, source="stated")
STATED = ["--rater-sd", "0.4", "--sample-sd", "0.6", "--residual-sd", "0.8"]


@pytest.mark.parametrize(("raters", "items"), [(5, 10), (30, 8)])
def test_the_simulated_width_agrees_with_the_closed_form(raters, items):
    simulated = simulate(COMPONENTS, Design(raters, items, 3), difference=0.5)
    expected = closed_form_width(COMPONENTS, raters, items)
    assert simulated.width == pytest.approx(expected, rel=0.04)


def test_power_rises_with_the_difference_and_with_the_raters():
    by_difference = [simulate(COMPONENTS, Design(3, 12, 2), d).power for d in (0.2, 0.4, 0.6)]
    by_raters = [simulate(COMPONENTS, Design(r, 12, 2), 0.3).power for r in (2, 4, 8)]
    for powers in (by_difference, by_raters):
        assert all(later > earlier + 0.1 for earlier, later in pairwise(powers)), powers


def test_power_is_the_level_without_a_difference_and_near_one_for_a_large_one():
    design = Design(17, 15, 3)
    assert 0.02 <= simulate(COMPONENTS, design, 0.0).power <= 0.09
    assert simulate(COMPONENTS, design, 1.0).power > 0.99


@pytest.mark.parametrize("target", [0.5, 0.8])
def test_the_suggestion_meets_the_target_and_one_rater_or_item_fewer_does_not(target):
    design = suggest(COMPONENTS, methods=3, target_width=target)
    assert design is not None and design.methods == 3
    assert closed_form_width(COMPONENTS, design.raters, design.items) <= target
    assert closed_form_width(COMPONENTS, design.raters - 1, design.items) > target
    assert closed_form_width(COMPONENTS, design.raters, design.items - 1) > target


def test_no_suggestion_when_no_design_in_the_grid_meets_the_target(cli):
    assert suggest(COMPONENTS, methods=3, target_width=0.05) is None
    code, out, err = cli("human-eval", "plan", *STATED, "--target-width", "0.05")
    assert code == 0, err
    assert "No design with 2-60 raters and items reaches width 0.05." in out
    assert "| suggested |" not in out


def pilot_ratings(path: Path, rater_sd: float, sample_sd: float, residual_sd: float) -> Path:
    """20 raters x 20 samples x 3 methods of continuous ratings whose rater and sample effects
    have exactly the stated standard deviations, so the fitted components can be held close."""
    rng = np.random.default_rng(7)
    raters, samples, methods = 20, 20, 3

    def effects(sd: float, size: int) -> np.ndarray:
        drawn = rng.normal(size=size)
        return sd * (drawn - drawn.mean()) / drawn.std(ddof=1)

    rater, sample, method = np.meshgrid(
        np.arange(raters), np.arange(samples), np.arange(methods), indexing="ij"
    )
    rating = (
        3.0
        + 0.3 * method
        + effects(rater_sd, raters)[rater]
        + effects(sample_sd, samples)[sample]
        + rng.normal(0, residual_sd, rater.shape)
    )
    pd.DataFrame(
        {
            "rater": [f"r{r}" for r in rater.ravel()],
            "item": [f"s{s}-m{m}" for s, m in zip(sample.ravel(), method.ravel(), strict=True)],
            "method": [f"m{m}" for m in method.ravel()],
            "sample": [f"s{s}" for s in sample.ravel()],
            "rating": rating.ravel(),
        }
    ).to_csv(path, index=False)
    return path


def test_plan_from_a_pilot_reports_its_components(cli, tmp_path):
    pilot = pilot_ratings(tmp_path / "pilot_1.csv", rater_sd=0.4, sample_sd=0.6, residual_sd=0.8)
    code, out, err = cli(
        "human-eval", "plan", "--pilot", pilot, "--target-width", "0.6", "--out", tmp_path / "p"
    )
    assert code == 0, err
    assert f"from the pilot {markdown_cell(pilot)}" in out
    assert "| stated | 17 | 15 | 765 |" in out and "| suggested |" in out
    components = json.loads((tmp_path / "p" / "plan.json").read_text())["components"]
    assert components["source"] == str(pilot)
    assert components["sd"]["rater"] == pytest.approx(0.4, abs=0.1)
    assert components["sd"]["sample"] == pytest.approx(0.6, abs=0.1)
    assert components["sd"]["residual"] == pytest.approx(0.8, abs=0.05)


def test_out_writes_the_markdown_the_numbers_and_the_plot(cli, tmp_path):
    code, out, err = cli(
        "human-eval", "plan", *STATED, "--raters", "10", "--items", "12", "--methods", "2",
        "--target-width", "0.7", "--difference", "0.3", "--out", tmp_path / "p",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "p" / "plan.md").read_text() == out
    assert (tmp_path / "p" / "plan.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    result = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert result["components"]["source"] == "stated"
    assert result["components"]["variance"]["sample"] == pytest.approx(0.36)
    assert (result["difference"], result["target_width"]) == (0.3, 0.7)
    stated = result["stated"]
    assert (stated["raters"], stated["items"], stated["methods"], stated["ratings"]) == (
        10, 12, 2, 240,
    )  # fmt: skip
    assert stated["width_closed_form"] == pytest.approx(closed_form_width(COMPONENTS, 10, 12))
    assert 0 <= stated["power"] <= 1
    assert result["suggested"]["width_closed_form"] <= 0.7


def one_line_error(cli, *arguments) -> str:
    code, _, err = cli("human-eval", "plan", *arguments)
    assert code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rater-sd", "0.4", "--residual-sd", "0.8"], "(missing: --sample-sd)"),
        ([], "(missing: --rater-sd, --sample-sd, --residual-sd)"),
        (["--pilot", "pilot.csv", "--rater-sd", "0.4"], "either --pilot or --rater-sd"),
        ([*STATED, "--raters", "1"], "--raters must be at least 2, not 1"),
        ([*STATED, "--methods", "1"], "--methods must be at least 2, not 1"),
        ([*STATED, "--target-width", "0"], "--target-width must be a positive number"),
        (["--rater-sd", "-1"], "--rater-sd must be at least 0, not -1.0"),
    ],
)
def test_bad_options_are_one_line_errors_that_write_nothing(arguments, message, cli, tmp_path):
    assert message in one_line_error(cli, *arguments, "--out", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_a_pilot_missing_a_column_is_a_one_line_error_naming_it(cli, tmp_path):
    pilot = tmp_path / "pilot.csv"
    pd.DataFrame({"rater": ["a"], "item": ["i"], "method": ["m"], "sample": ["s"]}).to_csv(
        pilot, index=False
    )
    assert f"{pilot} lacks the columns rating" in one_line_error(cli, "--pilot", pilot)


def test_a_pilot_whose_model_does_not_converge_says_to_state_the_components(
    cli, tmp_path, monkeypatch
):
    import audiobench.human_eval.analyze as analyze

    def failed(rated):
        return {"converged": False, "message": "the fit failed: singular matrix"}

    monkeypatch.setattr(analyze, "mixed_model", failed)
    pilot = pilot_ratings(tmp_path / "pilot.csv", 0.4, 0.6, 0.8)
    error = one_line_error(cli, "--pilot", pilot)
    assert f"the mixed model of the pilot {pilot} did not converge" in error
    assert "the fit failed: singular matrix" in error and "--rater-sd" in error
