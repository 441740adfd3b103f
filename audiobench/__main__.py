"""`python -m audiobench` (and `accelerate launch -m audiobench`) runs the CLI."""

from audiobench.cli import main

main()
