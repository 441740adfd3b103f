"""mkdocs hook: pages and sources generated from the code at build time, so they cannot drift.

- `reference/cli.md`: the usage, help and options of every `audiobench` command, read from the
  typer app (`audiobench.cli:app`) through its click command tree.
- The API reference (mkdocstrings) must see the installed import names: the repository keeps
  methods/, human_eval/, benchmarks/ and leaderboards/ at its top level, but they import as
  `audiobench.methods`, ... (setuptools `package-dir` in pyproject.toml). The hook copies the
  sources into one temporary `audiobench/` tree laid out as installed and points the Python
  handler's search path at it.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
CLI_PAGE = "reference/cli.md"
_api_tree: tempfile.TemporaryDirectory[str] | None = None


@event_priority(100)  # before mkdocstrings creates its handlers in its own on_config
def on_config(config: Any) -> Any:
    global _api_tree
    package_dirs = package_dir_table((ROOT / "pyproject.toml").read_text())
    _api_tree = tempfile.TemporaryDirectory(prefix="audiobench-api-")
    target = Path(_api_tree.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # Parents before children, so `audiobench.methods` lands inside the copied `audiobench`.
    for name in sorted(package_dirs, key=lambda n: n.count(".")):
        destination = target.joinpath(*name.split("."))
        shutil.copytree(ROOT / package_dirs[name], destination, ignore=ignore, dirs_exist_ok=True)
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [str(target)]
    return config


def package_dir_table(pyproject: str) -> dict[str, str]:
    """`[tool.setuptools.package-dir]` of pyproject.toml: import name -> folder. (Read with a
    pattern, not tomllib, which Python 3.10 lacks; the table holds only `"a" = "b"` lines.)"""
    table = pyproject.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^"([\w.]+)"\s*=\s*"([^"]+)"', table, flags=re.MULTILINE))


def on_post_build(config: Any) -> None:
    global _api_tree
    if _api_tree is not None:
        _api_tree.cleanup()
        _api_tree = None


def on_files(files: Files, config: Any) -> Files:
    # docs/reference/cli.md is a stub for readers of the repository; the site gets the real page.
    stub = files.get_file_from_path(CLI_PAGE)
    if stub is not None:
        files.remove(stub)
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files


def cli_reference() -> str:
    import typer.main

    from audiobench.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the typer app `audiobench.cli:app`: the same text as "
        "`audiobench COMMAND --help`. Every command is also runnable as "
        "`python -m audiobench COMMAND`.",
        "",
    ]
    context = root.context_class(root, info_name="audiobench")
    _command(lines, root, context, ["audiobench"], top=True)
    return "\n".join(lines) + "\n"


def _command(lines: list[str], command: Any, context: Any, path: list[str], top: bool) -> None:
    subcommands = getattr(command, "commands", None)
    if not top:
        depth = min(len(path), 4)
        lines += [f"{'#' * depth} `{' '.join(path)}`", ""]
        if command.help:
            lines += [_text(command.help), ""]
        if subcommands is None:
            usage = " ".join(command.collect_usage_pieces(context))
            lines += ["```text", f"{' '.join(path)} {usage}".rstrip(), "```", ""]
            rows = []
            for param in command.get_params(context):
                record = param.get_help_record(context)
                if record is not None:
                    rows.append(f"| `{record[0]}` | {_cell(record[1])} |")
            if rows:
                lines += ["| option | meaning |", "|---|---|", *rows, ""]
    if subcommands:
        if not top:
            names = ", ".join(f"`{name}`" for name in subcommands)
            lines += [f"Subcommands: {names}.", ""]
        for name, sub in subcommands.items():
            sub_context = sub.context_class(sub, info_name=name, parent=context)
            _command(lines, sub, sub_context, [*path, name], top=False)


def _text(text: str) -> str:
    """Help text as markdown: escaped, and each `Example:` line as code."""
    out = []
    for line in text.strip().splitlines():
        if line.startswith("Example: "):
            out += ["", f"Example: `{line.removeprefix('Example: ')}`", ""]
        else:
            out.append(html.escape(line, quote=False))
    return "\n".join(out).strip()


def _cell(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|").replace("*", "\\*")
