"""The paper's scores as pure functions of embeddings and names, independent of any model.

All similarities are cosine similarities of L2-normalised embeddings, computed in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_BLOCK_SIZE = 1024


def win_rate(
    query: torch.Tensor,
    paired: torch.Tensor,
    pool: torch.Tensor | None = None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[float, np.ndarray]:
    """How often a query is closer to its own pair than to another sample's (AIS, IIS).

    For each i, win_i is the fraction of j != i, over the pool, with
    cos(query_i, paired_i) > cos(query_i, paired_j), ties counting 1/2. The pool is every row of
    `paired` by default, or the rows whose indices `pool` lists (a fixed random subset for very
    large N). Returns (100 * mean win, per-sample wins). 50 is chance, 100 perfect.

    Queries are processed `block_size` rows at a time (memory O(block_size * N)). Rows of
    `paired` are deduplicated first so that identical embeddings give bit-identical
    similarities: ties between duplicates are exact, not left to floating-point rounding.
    """
    if query.shape != paired.shape or query.ndim != 2:
        raise ValueError(
            f"query {tuple(query.shape)} and paired {tuple(paired.shape)} must be "
            "matching (N, D) matrices"
        )
    count = query.shape[0]
    if count < 2:
        raise ValueError(f"a win rate needs at least 2 samples, got {count}")
    query = F.normalize(query.double(), dim=1)
    unique, inverse = torch.unique(F.normalize(paired.double(), dim=1), dim=0, return_inverse=True)
    pool = torch.arange(count) if pool is None else torch.as_tensor(pool, dtype=torch.long)
    wins = torch.empty(count, dtype=torch.float64)
    for start in range(0, count, block_size):
        rows = torch.arange(start, min(start + block_size, count))
        similarity = query[rows] @ unique.T  # (block, unique)
        own = similarity.gather(1, inverse[rows, None])  # cos(query_i, paired_i)
        others = similarity[:, inverse[pool]]  # cos(query_i, paired_j) for j in the pool
        score = (own > others).double() + 0.5 * (own == others).double()
        not_self = pool[None, :] != rows[:, None]
        wins[rows] = (score * not_self).sum(1) / not_self.sum(1)
    per_sample = wins.numpy()
    return 100.0 * float(per_sample.mean()), per_sample


def agreement_rate(
    predicted_names: Sequence[str],
    labels: Sequence[str],
    embed_text: Callable[[list[str]], torch.Tensor],
    threshold: float = 0.75,
) -> tuple[float, np.ndarray]:
    """How often a predicted class name means the label (AIC).

    A prediction agrees when it equals the label (ignoring case and surrounding spaces) or when
    the cosine similarity of the two names' text embeddings is strictly above `threshold`.
    Each distinct name is embedded once. Returns (100 * fraction agreeing, per-sample 0/1).
    """
    if len(predicted_names) != len(labels):
        raise ValueError(f"{len(predicted_names)} predictions for {len(labels)} labels")
    names = sorted(set(predicted_names) | set(labels))
    embeddings = F.normalize(embed_text(names).double(), dim=1)
    position = {name: index for index, name in enumerate(names)}
    predicted = embeddings[[position[name] for name in predicted_names]]
    target = embeddings[[position[name] for name in labels]]
    similar = ((predicted * target).sum(1) > threshold).numpy()
    equal = np.array([_same_name(a, b) for a, b in zip(predicted_names, labels, strict=True)])
    per_sample = (equal | similar).astype(np.float64)
    return 100.0 * float(per_sample.mean()), per_sample


def identification_accuracy(
    images: torch.Tensor,
    labels: Sequence[str],
    references: torch.Tensor,
    reference_labels: Sequence[str],
) -> tuple[list[str], np.ndarray]:
    """Whom each image shows, judged by its reference images (the speaker study's SID).

    Each label's prototype is the normalised mean of its references' unit embeddings; an image
    is identified as the label whose prototype is most cosine-similar (the alphabetically first
    among exact ties) and is correct when that is its own label. Chance is 1 / (number of
    labels). Returns (identified labels, per-sample 0/1 correctness).
    """
    if len(images) != len(labels) or len(references) != len(reference_labels):
        raise ValueError("every image and every reference needs exactly one label")
    names = sorted(set(reference_labels))
    if len(names) < 2:
        raise ValueError(f"identification needs references of at least 2 labels, got {names}")
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"no reference images for {', '.join(unknown[:5])}")
    units = F.normalize(references.double(), dim=1)
    owner = torch.tensor([names.index(label) for label in reference_labels])
    sums = torch.zeros(len(names), units.shape[1], dtype=torch.float64).index_add_(0, owner, units)
    prototypes = F.normalize(sums, dim=1)
    chosen = (F.normalize(images.double(), dim=1) @ prototypes.T).argmax(dim=1).tolist()
    identified = [names[index] for index in chosen]
    correct = np.array([a == b for a, b in zip(identified, labels, strict=True)], dtype=np.float64)
    return identified, correct


def _same_name(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def bootstrap_ci(
    per_sample: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `per_sample` (seeded)."""
    values = np.asarray(per_sample, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a confidence interval needs at least one value")
    draws = np.random.default_rng(seed).integers(0, values.size, size=(n_resamples, values.size))
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)
