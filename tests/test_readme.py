"""The README is short and true: its two quickstart commands are the ones CI runs, its command
table is complete, it stays under 12 KB, and every file it links to exists."""

from __future__ import annotations

import re
from urllib.parse import unquote

from audiobench.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()
MAX_BYTES = 12 * 1024


def quickstart_commands() -> list[str]:
    section = README.split("## Quickstart")[1].split("\n## ")[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_ci_runs_exactly_the_readme_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    for command in commands:
        assert command.startswith("python3 -m venv .venv && ")
        assert command in CI.splitlines()
    for suite in ("-m kill", "-m paper_smoke -s"):
        command = f".venv/bin/python -m pytest {suite}"
        assert f"`{command}`" in README and any(
            line.endswith(command) for line in CI.splitlines()
        ), command


def cli_commands() -> list[str]:
    """`audiobench NAME` for every command and `audiobench NAME SUB` for every subcommand."""
    import typer.main

    group = typer.main.get_command(app)
    usages = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", {None: command})
        usages += [f"audiobench {name}" + (f" {sub}" if sub else "") for sub in subcommands]
    return usages


def test_every_cli_command_is_in_the_readme():
    commands = cli_commands()
    assert "audiobench leaderboard render" in commands  # the walk reaches subcommands
    table = README.split("## Commands")[1].split("\n## ")[0]
    for usage in commands:
        assert f"| `{usage}" in table, f"{usage} is not in the README's command table"


def test_readme_is_at_most_12_kib():
    size = len((REPO / "README.md").read_bytes())
    assert size <= MAX_BYTES, f"README.md is {size} bytes (limit {MAX_BYTES}): move detail to docs/"


def relative_links(markdown: str) -> list[str]:
    """Targets of markdown links and images, and of HTML src/href attributes, that are not URLs
    or in-page anchors."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", markdown)
    targets += re.findall(r"(?:src|href)=\"([^\"]+)\"", markdown)
    return [
        target
        for target in targets
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_relative_links_parse():
    links = relative_links('[a](docs/a.md#x) ![b](docs/b.png "t") [c](https://x.org) [d](#e)')
    assert links == ["docs/a.md#x", "docs/b.png"]


def test_every_relative_link_in_the_readme_exists():
    links = relative_links(README)
    assert any(link.startswith("docs/assets/") for link in links), "the README shows a picture"
    assert any(link.startswith("docs/") and link.endswith(".md") for link in links)
    for link in links:
        path = REPO / unquote(link.split("#")[0])
        assert path.is_file(), f"README links to {link}, which does not exist"


def test_readme_picture_is_small():
    for link in relative_links(README):
        if link.endswith(".png"):
            assert (REPO / link).stat().st_size < 300 * 1024, link
