"""Speed and memory measurements of audiobench (not tests: nothing here asserts a time)."""
