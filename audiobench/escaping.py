"""Escaping of the strings audiobench did not write (method names, labels, leaderboard rows).

One function per output format, and every writer uses these and nothing else, so a name such as
`$x^2$`, `a|b` or `<script>` shows up as itself in a LaTeX table, a markdown table, an HTML page
or a figure instead of breaking the table, injecting markup or crashing the renderer. CSV for
people is not here: a CSV reader needs no escaping beyond the csv module's quoting.
"""

from __future__ import annotations

import html
import re

# One pass through str.translate, so the backslashes and braces an escape adds are never
# escaped again. Beyond TeX's ten specials: `<`, `>` and `|` print as other glyphs in the
# default OT1 encoding; `[` and `]` would be read as the optional argument of the `\\` or
# `\midrule` before a cell; control characters are invalid input or paragraph breaks in TeX.
_LATEX = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "{": r"\{",
        "}": r"\}",
        "$": r"\$",
        "&": r"\&",
        "#": r"\#",
        "%": r"\%",
        "_": r"\_",
        "^": r"\textasciicircum{}",
        "~": r"\textasciitilde{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "|": r"\textbar{}",
        "[": "{[}",
        "]": "{]}",
        **{chr(code): " " for code in (*range(0x20), 0x7F)},
    }
)

# Characters that make markdown structure (table cells, emphasis, code, links, HTML, entities,
# strikethrough); a backslash before any ASCII punctuation makes it literal in CommonMark.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|#~&])")


def latex_text(text: object) -> str:
    """Text for a LaTeX document (text mode, e.g. a tabular cell) that prints as itself."""
    return str(text).translate(_LATEX)


def markdown_cell(text: object) -> str:
    """A markdown table cell that stays one cell and shows its text literally: markup
    characters are backslash-escaped and all whitespace, newlines included, is one space."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def html_text(text: object) -> str:
    """Text for HTML element content or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def plot_text(text: object) -> str:
    """A matplotlib label shown as itself: without usetex only an unescaped `$` starts
    mathtext (which draws `$x^2$` as math and raises on `$\\foo$` when the figure is drawn)."""
    return str(text).replace("$", r"\$")
