"""audiobench's built-in method plugins, each registered through the `audiobench.methods` entry
points in pyproject.toml exactly as a third-party method would be."""
