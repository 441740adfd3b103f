"""The two kinds of error a user can act on.

Everything else is a bug and keeps its traceback. These two are printed by the CLI as one line
and end the command with exit code 2 (`AudiobenchError`), or are recorded against one sample
while the run goes on (`SampleError`).
"""


class AudiobenchError(Exception):
    """Bad input or configuration that the user can fix: the message names the thing and the fix."""


class SampleError(AudiobenchError):
    """One sample's inputs are unusable (missing or corrupt file, silence, too short)."""


def unknown_name(what: str, name: str, known: list[str]) -> AudiobenchError:
    """The error for a name that is not registered: the closest known one and all of them."""
    import difflib

    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return AudiobenchError(
        f"unknown {what} {name!r}{suggestion}; known {what}s: {', '.join(known) or 'none'}"
    )
