"""The command line as researchers know it from click, argparse, huggingface-cli or accelerate.

The installed typer prints Python type tags in help (`--out <path>`, `--json <bool>`, so a flag
looks as if it took a value) and arguments as `{run_dir}`, with no setting to change it. The root
group gives every parameter of the command tree click's conventions once, when the app is built:
`--out PATH`, a bare `--json`, `RUN_DIR`. It also carries Ctrl-C to `main` as one line, where
typer would exit silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import typer
from typer._click import Command, Context  # typer's own copy of click
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperArgument, TyperGroup, TyperOption

_METAVARS = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}


class Interrupted(Exception):
    """Ctrl-C on its way to `main`, with what the user can do next (None: nothing to resume)."""

    def __init__(self, hint: str | None) -> None:
        super().__init__(hint)
        self.hint = hint


@contextmanager
def on_interrupt(hint: str | None) -> Iterator[None]:
    """Ctrl-C inside the block ends the command with `hint` (what was kept, how to go on)."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        raise Interrupted(hint) from interrupt


def usage_error_line(error: typer.TyperException) -> str | None:
    """A click usage error as one line, its suggestions ("Possible options: --method") kept and
    the help to read named; None for a group called without a command (its help is printed)."""
    if isinstance(error, NoArgsIsHelpError):
        return None
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    return f"{message} (see '{context.command_path} --help')" if context else message


class ConventionalOption(TyperOption):
    """An option whose help shows click's metavar (`PATH`, `INTEGER`), or nothing for a flag."""

    def display_type_rich(self, ctx: Context) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar:
            return self.metavar
        kind = self.type_descriptor.annotation
        if self.type_descriptor.is_list:
            kind = get_args(kind)[0]
        return _METAVARS.get(kind, "VALUE")


class ConventionalArgument(TyperArgument):
    """An argument named in upper case, `[RUN_DIR]` when optional, `RUN_DIRS...` when repeated."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None  # the upper-case name stands for the value, as in click

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        piece = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return [piece if self.required else f"[{piece}]"]


class ConventionalGroup(TyperGroup):
    """The root command group: conventional help for the whole tree, Ctrl-C as `Interrupted`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in _command_tree(self):
            help_option = command.get_help_option(Context(command))
            for param in [*command.params, *([help_option] if help_option else [])]:
                _make_conventional(param)

    def invoke(self, ctx: Context) -> Any:
        with on_interrupt(None):
            return super().invoke(ctx)


def _command_tree(command: Command) -> Iterator[Command]:
    yield command
    for subcommand in getattr(command, "commands", {}).values():
        yield from _command_tree(subcommand)


def _make_conventional(param: Any) -> None:
    """Give a parameter that typer built the conventional help of its kind (typer picks the
    classes of the parameters it builds, so they are swapped for the subclasses above)."""
    if isinstance(param, TyperArgument):
        param.metavar = param.metavar or (param.name or "").upper()
        param.__class__ = ConventionalArgument
    elif isinstance(param, TyperOption):
        param.__class__ = ConventionalOption
