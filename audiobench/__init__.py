"""audiobench: the open benchmark suite for audio-to-image generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("audiobench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """`audiobench.score` without importing torch and the models at `import audiobench`."""
    if name == "score":
        from audiobench.scoring import score

        return score
    raise AttributeError(f"module 'audiobench' has no attribute {name!r}")
