"""Hostile strings through every escaper and every writer (issue 17, item 8).

Each escaper is checked by a property that fails when the escaping is wrong, judged by code
written here independently of audiobench/escaping.py (a LaTeX tokeniser and decoder, a markdown
cell splitter, the stdlib's HTML unescaping, matplotlib's own mathtext decision); then the corpus
goes end to end through `report` (markdown, LaTeX, HTML), `leaderboard render` and
`human-eval analyze`.
"""

from __future__ import annotations

import html
import json
import re
import shutil

import matplotlib
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from audiobench import escaping
from audiobench.data import INDEX_FILE, load_index
from audiobench.store import png_bytes
from tests.media import compile_latex

matplotlib.use("Agg")

HOSTILE = [
    "$x^2$",
    "a_b",
    "50%",
    "#1",
    "a&b",
    "~/x",
    r"\textbf{x}",
    "{}",
    "}{",
    "a|b",
    "line\nbreak",
    "<script>alert(1)</script>",
    "\"quote'",
    "**bold**",
    "[link](http://x)",
    "[1cm] starts like an optional argument",
    "café ñ 日本 🎵",
    "",
    "\\",
    "\\\\",
    "a\\|b",
    "`code`",
    "^_^",
    "$",
    "$$",
    r"$\foo$",
    r"\$ already escaped",
    "tab\there\r\nand\x0bvertical\x0cfeed",
    "&amp; &lt;b&gt;",
    "~~struck~~",
    "--- em -- en ``quotes''",
    "  leading and trailing  ",
    "\x00nul\x07bell\x7f",
]
# what the tables show: a newline or any whitespace run is one space (a cell has one line)
ONE_LINE = {s: " ".join(s.split()) for s in HOSTILE}


# --- LaTeX: a tokeniser and a decoder written from the escaping's specification ------------------

LATEX_WORDS = {
    "textbackslash": "\\",
    "textasciicircum": "^",
    "textasciitilde": "~",
    "textless": "<",
    "textgreater": ">",
    "textbar": "|",
}
LATEX_SYMBOLS = set("{}$&#%_")
LATEX_GROUPS = {"{[}": "[", "{]}": "]"}
RAW_FORBIDDEN = set("\\{}$&#^_~%<>|[]") | {chr(c) for c in (*range(32), 127)}


def latex_tokens(text: str) -> list[tuple[str, str]]:
    """(source, character it prints) for each token; AssertionError at anything not text."""
    tokens, i = [], 0
    while i < len(text):
        word = re.match(r"\\([A-Za-z]+)\{\}", text[i:])
        if word and word.group(1) in LATEX_WORDS:
            tokens.append((word.group(0), LATEX_WORDS[word.group(1)]))
            i += len(word.group(0))
        elif text[i] == "\\" and text[i + 1 : i + 2] in LATEX_SYMBOLS:
            tokens.append((text[i : i + 2], text[i + 1]))
            i += 2
        elif text[i : i + 3] in LATEX_GROUPS:
            tokens.append((text[i : i + 3], LATEX_GROUPS[text[i : i + 3]]))
            i += 3
        else:
            assert text[i] not in RAW_FORBIDDEN, f"unescaped {text[i]!r} at {i} in {text!r}"
            tokens.append((text[i], text[i]))
            i += 1
    return tokens


def latex_decoded(text: str) -> str:
    return "".join(printed for _, printed in latex_tokens(text))


def latex_expected(original: str) -> str:
    """Control characters (newlines too) become spaces; everything else prints as itself."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in original)


@pytest.mark.parametrize("original", HOSTILE)
def test_latex_leaves_no_special_unescaped_and_decodes_to_the_original(original):
    assert latex_decoded(escaping.latex_text(original)) == latex_expected(original)


def test_latex_escapes_in_one_pass():
    assert escaping.latex_text("\\{}") == r"\textbackslash{}\{\}"
    assert escaping.latex_text("^~") == r"\textasciicircum{}\textasciitilde{}"
    assert escaping.latex_text("a\nb") == "a b"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_latex_round_trips_any_text(original):
    assert latex_decoded(escaping.latex_text(original)) == latex_expected(original)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_corpus_compiles(tmp_path):
    """Every corpus string (pdflatex's Latin-1 reach) as the first cell of a booktabs row."""
    printable = [s for s in HOSTILE if all(ord(c) < 256 for c in s)]
    rows = "".join(f"{escaping.latex_text(s)} & x \\\\\n" for s in printable)
    document = (
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
        f"\\begin{{tabular}}{{ll}}\\toprule\n{rows}\\midrule\n{rows}\\bottomrule\\end{{tabular}}\n"
        "\\end{document}\n"
    )
    compile_latex(tmp_path, document)


# --- Markdown: the cell stays one cell and shows its text -------------------------------------

MARKUP = set("\\`*_[]<>|#~&")


def markdown_cells(row: str) -> list[str]:
    """A GFM table row split at its unescaped pipes (a backslash escapes the next character)."""
    cells, current, i = [], "", 0
    while i < len(row):
        if row[i] == "\\" and i + 1 < len(row):
            current += row[i : i + 2]
            i += 2
            continue
        if row[i] == "|":
            cells.append(current)
            current = ""
        else:
            current += row[i]
        i += 1
    return [cell.strip() for cell in [*cells, current][1:-1]]


def markdown_literal(cell: str) -> str:
    """What a CommonMark renderer shows: an escaped character is itself; no markup is left."""
    shown, i = "", 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in MARKUP:
            shown += cell[i + 1]
            i += 2
        else:
            assert cell[i] not in MARKUP, f"unescaped {cell[i]!r} in {cell!r}"
            shown += cell[i]
            i += 1
    return shown


def check_markdown(original: str) -> None:
    row = "| before | " + escaping.markdown_cell(original) + " | after |"
    assert "\n" not in row
    before, cell, after = markdown_cells(row)
    assert (before, after) == ("before", "after")
    assert markdown_literal(cell) == " ".join(original.split())


@pytest.mark.parametrize("original", HOSTILE)
def test_markdown_cell_stays_one_cell_and_shows_its_text(original):
    check_markdown(original)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_markdown_any_text(original):
    check_markdown(original)


# --- HTML and matplotlib ----------------------------------------------------------------------


@pytest.mark.parametrize("original", HOSTILE)
def test_html_unescapes_to_the_original_and_opens_no_tag(original):
    escaped = escaping.html_text(original)
    assert html.unescape(escaped) == original
    assert not set(escaped) & set("<>\"'")


@pytest.mark.filterwarnings("ignore:Glyph")  # the corpus has characters DejaVu Sans lacks
@pytest.mark.parametrize("original", HOSTILE)
def test_matplotlib_draws_the_text_as_itself(original):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    try:
        title = axis.set_title(escaping.plot_text(original))
        figure.canvas.draw()
        assert title._preprocess_math(title.get_text()) == (original, False)
    finally:
        plt.close(figure)


def test_an_unescaped_mathtext_label_does_crash_the_drawing():
    """The check above can fail: matplotlib really raises on such a label."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.set_title(r"$\foo$")
    with pytest.raises(ValueError):
        figure.canvas.draw()
    plt.close(figure)


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_runs(demo_dir, tmp_path_factory):
    """One evaluated run per corpus string, named by it, over a copy of the demo dataset whose
    labels are corpus strings too (so every figure label and per-class row is hostile)."""
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    shutil.copytree(demo_dir, data)
    index = pd.read_parquet(data / INDEX_FILE)
    index["label"] = [HOSTILE[k % len(HOSTILE)] for k in range(len(index))]
    index.to_parquet(data / INDEX_FILE, index=False)
    samples = load_index(data, "test")[:2]
    return [
        make_hostile_run(root / f"run{k:02d}", name, data, samples)
        for k, name in enumerate(HOSTILE)
    ]


# the names the tables show: a run with an empty name is shown by its method's
SHOWN = [name or "hostile" for name in HOSTILE]


def make_hostile_run(run_dir, name, data, samples):
    (run_dir / "images").mkdir(parents=True)
    record = {"method": "hostile", "name": name, "profile": "paper", "dataset": str(data)}
    (run_dir / "run.json").write_text(json.dumps({**record, "split": "test", "seed": 0}))
    result = {"value": 50.0, "n": 2, "ci95": [40.0, 60.0], "higher_is_better": True}
    (run_dir / "metrics.json").write_text(
        json.dumps({"profile": "paper", "metrics": {"aic": result}})
    )
    ids = [sample.id for sample in samples]
    pd.DataFrame(
        {"id": ids, "label": [s.label for s in samples], "status": "ok", "aic_agree": 0.5}
    ).to_parquet(run_dir / "samples.parquet")
    for sample_id in ids:
        (run_dir / "images" / f"{sample_id}.png").write_bytes(png_bytes(Image.new("RGB", (8, 8))))
    return run_dir


def test_report_markdown_and_latex_show_every_name_escaped(hostile_runs, cli):
    code, out, err = cli("report", *hostile_runs, "--metrics", "aic")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 + len(HOSTILE)
    shown = [markdown_literal(markdown_cells(line)[0]) for line in lines[2:]]
    assert shown == [" ".join(name.split()) for name in SHOWN]
    assert all(len(markdown_cells(line)) == 3 for line in lines)

    code, out, err = cli("report", *hostile_runs, "--metrics", "aic", "--format", "latex")
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.endswith(r"\\")][1:]
    names = [row.split(" & ")[0] for row in rows]
    assert [latex_decoded(name) for name in names] == [latex_expected(s) for s in SHOWN]
    assert escaping.latex_text("$x^2$") in out and r"\textbf{x}" not in out


@pytest.mark.filterwarnings("ignore:Glyph")
def test_report_html_with_hostile_names_and_labels(hostile_runs, tmp_path, cli):
    """`$...$` in a run's name and its labels does not crash the figures; every name reaches
    the page as escaped text."""
    out = tmp_path / "report.html"
    code, _, err = cli(
        "report", *hostile_runs, "--metrics", "aic", "--format", "html", "--out", out
    )
    assert code == 0, err
    page = out.read_bytes().decode()  # as written: read_text would turn \r\n into \n
    for name in SHOWN:
        assert f"<td>{escaping.html_text(name)}</td>" in page
    assert "<script>" not in page
    assert page.count("data:image/png;base64,") == 1 + len(HOSTILE)


def test_leaderboard_render_escapes_every_name(tmp_path, cli):
    from audiobench import leaderboard

    board = leaderboard.new_board()
    template = board["rows"][0]
    board["rows"] = [{**template, "name": name, "profile": name} for name in HOSTILE]
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board))
    out = tmp_path / "board.md"
    code, _, err = cli("leaderboard", "render", "--file", path, "--out", out)
    assert code == 0, err
    lines = [line for line in out.read_text().splitlines() if line.startswith("|")][2:]
    assert len(lines) == len(HOSTILE)
    for line, name in zip(lines, HOSTILE, strict=True):
        cells = markdown_cells(line)
        assert len(cells) == 9  # method, source, profile, four metrics, N, difference
        assert markdown_literal(cells[0]) == ONE_LINE[name]
        assert markdown_literal(cells[2]) == (ONE_LINE[name] or "-")


@pytest.mark.filterwarnings("ignore:Glyph")
def test_human_eval_analyze_escapes_method_names(tmp_path, cli):
    from tests.test_human_eval import synthetic_ratings

    ratings = synthetic_ratings()
    methods = {"good": "$x^2$ a_b 50%", "mid": r"\textbf{x} {} #1 ~/x", "bad": r"$\foo$ a|b"}
    ratings["method"] = ratings["method"].replace(methods)
    path = tmp_path / "ratings.csv"
    ratings.to_csv(path, index=False)
    code, _, err = cli("human-eval", "analyze", path, "--out", tmp_path / "analysis")
    assert code == 0, err
    assert (tmp_path / "analysis" / "ratings.png").read_bytes().startswith(b"\x89PNG")
    tex = (tmp_path / "analysis" / "table.tex").read_text().splitlines()
    assert sorted(latex_decoded(row.split(" & ")[0]) for row in tex) == sorted(methods.values())
    markdown_rows = (tmp_path / "analysis" / "table.md").read_text().splitlines()[2:]
    shown = sorted(markdown_literal(markdown_cells(row)[0]) for row in markdown_rows)
    assert shown == sorted(methods.values())
