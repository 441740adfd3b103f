"""audiobench: the open benchmark suite for audio-to-image generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("audiobench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
