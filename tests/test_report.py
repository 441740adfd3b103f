"""Reports and the leaderboard from fixed metric files (golden outputs) and real tiny runs."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
from PIL import Image

from audiobench import leaderboard
from audiobench.errors import AudiobenchError
from audiobench.report import html_report, latex, load_rows, markdown, qualitative_grid
from audiobench.store import png_bytes
from tests.media import compile_latex

VALUES = {  # method -> (aic, fid, ais, iis)
    "reference": (54.0, 0.0, 50.0, 100.0),
    "sd-text": (70.0, 50.0, 51.0, 52.0),
    "audiotoken": (45.5, 56.25, 68.0, 76.75),
    "wav2clip-vqgan": (30.0, 99.5, 47.0, 51.0),
}


def make_run(root, method, values, profile="paper"):
    run_dir = root / f"{method}-test-{profile}-seed0"
    (run_dir / "images").mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "method": method,
                "profile": profile,
                "split": "test",
                "seed": 0,
                "method_config": {},
                "checkpoint": None,
            }
        )
    )
    metrics = {
        name: {
            "value": value,
            "n": 4,
            "ci95": [value - 1, value + 1],
            "higher_is_better": name != "fid",
            "config": {},
        }
        for name, value in zip(("aic", "fid", "ais", "iis"), values, strict=True)
    }
    (run_dir / "metrics.json").write_text(json.dumps({"profile": profile, "metrics": metrics}))
    ids = [f"clip{k}AAAAAAA_000001" for k in range(4)]
    pd.DataFrame({"id": ids, "label": ["dog", "cat", "rain", "bell"], "status": "ok"}).to_parquet(
        run_dir / "samples.parquet"
    )
    for k, sample_id in enumerate(ids):
        image = Image.new("RGB", (16, 16), (60 * k, 40, 200 - 40 * k))
        (run_dir / "images" / f"{sample_id}.png").write_bytes(png_bytes(image))
    return run_dir


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, method, values) for method, values in VALUES.items()]


GOLDEN_MARKDOWN = """\
> **Warning**: FID from fewer than 50 samples for SD (text labels) at N = 4, AudioToken at \
N = 4, Wav2Clip at N = 4: at such N its bias outweighs the differences between methods, and \
values at different N are not comparable.

| Method | AIC ↑ | FID ↓ | AIS ↑ | IIS ↑ | N |
|---|---|---|---|---|---|
| Reference (real frames) | 54.00 | - | 50.00 | - | 4 |
| SD (text labels) | 70.00 | 50.00 | 51.00 | 52.00 | 4 |
| AudioToken | **45.50** | **56.25** | **68.00** | **76.75** | 4 |
| Wav2Clip | 30.00 | 99.50 | 47.00 | 51.00 | 4 |
"""

GOLDEN_LATEX = (
    r"""\begin{table}[t]
\centering
\begin{tabular}{lccccc}
\toprule
Method & AIC $\uparrow$ & FID $\downarrow$ & AIS $\uparrow$ & IIS $\uparrow$ & N \\
\midrule
Reference (real frames) & 54.00 & - & 50.00 & - & 4 \\
SD (text labels) & 70.00 & 50.00 & 51.00 & 52.00 & 4 \\
AudioToken & \textbf{45.50} & \textbf{56.25} & \textbf{68.00} & \textbf{76.75} & 4 \\
Wav2Clip & 30.00 & 99.50 & 47.00 & 51.00 & 4 \\
\bottomrule
\end{tabular}
\caption{Audio-to-image results on VGGSound (audiobench). \textbf{FID from fewer than 50 """
    r"""samples: biased, not comparable.}}
\end{table}
"""
)


def test_markdown_and_latex_golden(runs):
    # reference and text rows go first; audio methods keep the order they were given in
    rows = load_rows([runs[2], runs[0], runs[3], runs[1]])
    assert markdown(rows) == GOLDEN_MARKDOWN
    assert latex(rows) == GOLDEN_LATEX


def test_bold_goes_to_the_best_audio_row_for_up_and_down_metrics(tmp_path):
    better_fid = make_run(tmp_path, "wav2clip-vqgan", (10.0, 20.0, 40.0, 45.0))
    worse = make_run(tmp_path, "audiotoken", (15.0, 30.0, 60.0, 70.0))
    text = markdown(load_rows([better_fid, worse]))
    assert "| Wav2Clip | 10.00 | **20.00** | 40.00 | 45.00 | 4 |" in text
    assert "| AudioToken | **15.00** | 30.00 | **60.00** | **70.00** | 4 |" in text


def test_intervals_and_latex_escaping(tmp_path, runs):
    text = markdown(load_rows(runs[:2]), with_ci=True)
    assert "| SD (text labels) | 70.00 [69.00, 71.00] |" in text
    from audiobench.escaping import latex_text

    assert latex_text("50% of A&B_c") == r"50\% of A\&B\_c"


def test_latex_is_balanced(runs):
    text = latex(load_rows(runs))
    for environment in ("table", "tabular"):
        assert text.count(rf"\begin{{{environment}}}") == text.count(rf"\end{{{environment}}}")
    rows = [line for line in text.splitlines() if line.endswith(r"\\")]
    assert all(line.count("&") == 5 for line in rows)


@pytest.mark.parametrize("profile", ["tiny", "paper-random"])
def test_random_weight_runs_carry_a_warning_everywhere(tmp_path, profile):
    rows = load_rows([make_run(tmp_path, "audiotoken", VALUES["audiotoken"], profile=profile)])
    assert markdown(rows).startswith(f"> **Warning**: Made with the {profile} profile")
    assert "meaningless" in latex(rows)
    assert 'class="warning"' in html_report(rows, False, {})
    with pytest.raises(AudiobenchError, match=f"{profile} profile"):
        leaderboard.add_runs(tmp_path / "board.json", [rows[0].run_dir])


def test_paper_runs_carry_no_warning(tmp_path):
    rows = load_rows([make_run(tmp_path, "audiotoken", VALUES["audiotoken"], profile="paper")])
    columns = ["aic", "ais", "iis"]  # an FID from these 4 samples would be flagged
    assert "Warning" not in markdown(rows, metrics=columns)
    assert "textbf" not in latex(rows, metrics=columns).split(r"\caption")[1]


def test_runs_evaluated_on_different_datasets_or_splits_carry_a_warning(runs):
    def evaluated_on(run_dir, split, index):
        path = run_dir / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["dataset"] = {"split": split, "dataset_sha256": index, "inputs_sha256": "ab" * 32}
        path.write_text(json.dumps(metrics))

    for run_dir in runs:
        evaluated_on(run_dir, "test", "1" * 64)
    assert "different datasets" not in markdown(load_rows(runs))
    evaluated_on(runs[0], "test", "2" * 64)  # the same split of an edited dataset
    rows = load_rows(runs)
    assert "evaluated on 2 different datasets or splits" in markdown(rows)
    assert "index 22222222" in markdown(rows) and "index 11111111" in markdown(rows)
    assert r"\textbf{Runs evaluated on different datasets or splits" in latex(rows)
    assert html_report(rows, False, {}).count("different datasets or splits") == 1


def test_html_is_self_contained_with_the_grid(runs):
    rows = load_rows(runs)
    grid = qualitative_grid(rows)
    assert grid.startswith(b"\x89PNG")
    page = html_report(rows, True, {"Qualitative comparison": grid})
    assert "<table>" in page and "<b>68.00</b>" in page
    assert page.count("data:image/png;base64,") == 1
    assert page.count('class="warning"') == 1 and "FID from fewer than 50" in page  # N = 4
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere


def test_cli_report_formats_and_published_rows(runs, cli):
    code, out, _ = cli("report", *runs)
    assert code == 0 and out == GOLDEN_MARKDOWN
    from tests.conftest import REPO

    code, out, _ = cli("report", *runs, "--leaderboard", REPO / "leaderboards" / "vggsound.json")
    assert code == 0
    assert "| AudioToken (paper) | 45.48 | 56.65 | 68.23 | 76.66 | - |" in out
    assert "| AudioToken | **45.50** |" in out  # published rows never take the bold
    code, _, err = cli("report", *runs, "--format", "pdf")
    assert code == 2 and "--format must be one of" in err


def test_run_without_metrics_is_named(runs, cli):
    (runs[2] / "metrics.json").unlink()
    code, _, err = cli("report", *runs)
    assert code == 2 and f"{runs[2]} has no metrics.json" in err


def test_leaderboard_has_the_papers_rows_and_renders_differences(tmp_path, runs):
    board_file = tmp_path / "board.json"
    board = leaderboard.add_runs(board_file, [runs[2]]).board
    assert [row["source"] for row in board["rows"]].count("paper") == 6
    stored = json.loads(board_file.read_text())
    assert stored == board and leaderboard.validate(stored, board_file) is stored
    text = leaderboard.render(stored)
    assert "| AudioToken | paper | - | 45.48 | 56.65 | 68.23 | 76.66 | - | - |" in text
    assert "AIC +0.02, FID -0.40, AIS -0.23, IIS +0.09" in text


def test_committed_leaderboard_is_valid_and_rendered(tmp_path):
    from tests.conftest import REPO

    path = REPO / "leaderboards" / "vggsound.json"
    board = leaderboard.validate(json.loads(path.read_text()), path)
    assert (REPO / "leaderboards" / "vggsound.md").read_text() == leaderboard.render(board)


def test_leaderboard_refuses_tiny_runs_and_bad_files(tmp_path):
    tiny = make_run(tmp_path, "audiotoken", VALUES["audiotoken"], profile="tiny")
    with pytest.raises(AudiobenchError, match="tiny profile"):
        leaderboard.add_runs(tmp_path / "board.json", [tiny])
    assert len(leaderboard.add_runs(tmp_path / "board.json", [tiny], force=True).board["rows"]) == 7
    (tmp_path / "bad.json").write_text(json.dumps({"schema_version": 1, "rows": [{"x": 1}]}))
    with pytest.raises(AudiobenchError, match=r"not a valid leaderboard: rows\[0\] lacks"):
        leaderboard.load(tmp_path / "bad.json")


def test_html_report_on_real_tiny_runs(demo_dir, tmp_path, cli):
    from audiobench.evaluation import EvaluateSettings, evaluate
    from audiobench.runner import RunSettings, execute

    run_dirs = []
    for method in ("audiotoken", "reference"):
        summary = execute(
            RunSettings(
                method=method,
                data_dir=demo_dir,
                out=tmp_path / "runs",
                profile="tiny",
                options={"steps": "2"} if method != "reference" else {},
            )
        )
        evaluate(EvaluateSettings(summary.run_dir, metrics=("aic", "iis")))
        run_dirs.append(summary.run_dir)
    classes = tmp_path / "classes.csv"
    classes.write_text('ambulance siren,1,vehicle\nraining,1,nature\n"sea waves",1,nature\n')
    out = tmp_path / "report.html"
    code, _, _ = cli("report", *run_dirs, "--format", "html", "--out", out, "--classes", classes)
    assert code == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2  # the grid, AudioToken's audio-image pairs
    assert len(list(tmp_path.glob("report_figure*.png"))) == 2
    assert "Per class (%)" in page and "telephone bell ringing" in page
    assert "Per supercategory (%)" in page and "nature" in page
    assert "(not in the class list)" in page  # the other demo classes
    assert 'class="warning"' in page
    text = markdown(load_rows(run_dirs))
    assert text.index("Reference (real frames)") < text.index("AudioToken")


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex not installed (.ci/run installs it)"
)
def test_latex_compiles_with_pdflatex(runs, tmp_path):
    document = (
        r"\documentclass{article}\usepackage{booktabs}\begin{document}"
        + latex(load_rows(runs))
        + r"\end{document}"
    )
    assert compile_latex(tmp_path, document).stat().st_size > 1000
