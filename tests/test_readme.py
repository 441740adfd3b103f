"""The README's two quickstart commands are the ones CI runs, and its command table is complete."""

from __future__ import annotations

import re

from audiobench.cli import app
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()


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


def test_every_cli_command_is_in_the_readme():
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", {None: command})
        for sub in subcommands:
            usage = f"audiobench {name}" + (f" {sub}" if sub else "")
            assert f"`{usage}" in README, f"{usage} is not documented in the README"
