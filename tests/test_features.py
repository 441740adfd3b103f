"""`Features.compute`: fixed batches, one load per batch, preparation shared by equal keys."""

from __future__ import annotations

import numpy as np
import pytest

from audiobench import features
from audiobench.features import Computer, FeatureKind, Features
from audiobench.store import FeatureCache


class NamedModels:
    """A zoo whose 'model' for a role is the role's name."""

    def load(self, role: str) -> str:
        return role

    def fingerprint(self, role: str) -> str:
        return f"{role}-0123456789abcdef"


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Registers kinds that log each preparation: 'scaled' (prepare key 'column', the model's
    name picks the factor) and 'shifted' (no key)."""
    log: list[str] = []

    def column(tag: str):
        def prepare(items: list[float]) -> np.ndarray:
            log.append(tag)
            return np.array(items, dtype=np.float32)[:, None]

        return prepare

    factors = {"double": 2.0, "triple": 3.0}
    monkeypatch.setitem(
        features.COMPUTERS,
        "scaled",
        lambda role: Computer(lambda x: x * factors[role], column("column"), "column"),
    )
    monkeypatch.setitem(
        features.COMPUTERS, "shifted", lambda role: Computer(lambda x: x + 1, column("own"))
    )
    return log


KINDS = [FeatureKind("double", "scaled"), FeatureKind("triple", "scaled")]


def test_kinds_with_one_prepare_key_share_each_batch(calls, tmp_path):
    numbers = Features(NamedModels(), batch_size=2, cache=tmp_path)
    values = numbers.compute(
        ["a", "b", "c"], [1.0, 2.0, 3.0], [*KINDS, FeatureKind("x", "shifted")], list, ""
    )
    assert calls == ["column", "own", "column", "own"]  # 2 batches; 'scaled' prepared once each
    np.testing.assert_array_equal(np.hstack(values), [[2, 3, 2], [4, 6, 3], [6, 9, 4]])


def test_only_batches_with_missing_features_are_prepared_again(calls, tmp_path):
    numbers = Features(NamedModels(), batch_size=2, cache=tmp_path)
    first = numbers.compute(["a", "b"], [1.0, 2.0], KINDS, list, "")
    calls.clear()
    again = Features(NamedModels(), batch_size=2, cache=tmp_path).compute(
        ["a", "b", "c", "a"], [1.0, 2.0, 3.0, 1.0], KINDS, list, ""
    )
    assert calls == ["column"]  # the cached batch [a, b] is read, [c] is computed
    np.testing.assert_array_equal(again[0][:2], first[0])
    np.testing.assert_array_equal(again[1][:, 0], [3, 6, 9, 3])


def test_a_cached_feature_is_never_replaced(tmp_path):
    """Another batching of the same input differs in float rounding; the shared cache keeps
    the first value, so one evaluation never changes what an earlier one read."""
    FeatureCache(tmp_path, "m").put(["a", "b"], np.array([[1.0], [2.0]]))
    FeatureCache(tmp_path, "m").put(["b", "c"], np.array([[2.5], [3.0]]))
    for cache in (FeatureCache(tmp_path, "m"), FeatureCache(tmp_path, "m")):
        np.testing.assert_array_equal(cache.get(["a", "b", "c"]), [[1.0], [2.0], [3.0]])
