"""The profiles every model role resolves under (no heavy imports: reports read these too).

- `paper`: the published weights;
- `paper-random`: the published architectures and sizes with seeded random weights;
- `tiny`: the same architectures at toy size with seeded random weights.
"""

PROFILES = ("paper", "paper-random", "tiny")
# Profiles with seeded random weights: their numbers mean nothing, and reports say so.
RANDOM_PROFILES = ("paper-random", "tiny")
