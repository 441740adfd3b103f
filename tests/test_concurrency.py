"""The thread helpers that feed the models: order, overlap and errors."""

from __future__ import annotations

import threading

import pytest

from audiobench.concurrency import one_ahead, thread_map


def test_thread_map_keeps_order():
    assert thread_map(lambda x: x * x, range(50)) == [x * x for x in range(50)]


def test_one_ahead_gives_every_result_in_order():
    assert list(one_ahead(lambda x: -x, [3, 1, 2])) == [-3, -1, -2]
    assert list(one_ahead(str, [7])) == ["7"]


def test_one_ahead_works_on_the_next_item_while_the_caller_holds_this_one():
    started: list[int] = []
    second_started = threading.Event()

    def work(item: int) -> int:
        started.append(item)
        if item == 1:
            second_started.set()
        return item

    results = one_ahead(work, [0, 1, 2, 3])
    assert next(results) == 0
    # item 1 runs while the caller has item 0 (the bound only catches a hang)
    assert second_started.wait(timeout=600)
    assert started == [0, 1]  # and never more than one item ahead
    assert list(results) == [1, 2, 3]


def test_one_ahead_raises_at_the_failing_item_after_the_earlier_results():
    def work(item: int) -> int:
        if item == 2:
            raise ValueError("item 2 is broken")
        return item

    results = one_ahead(work, [0, 1, 2, 3])
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="item 2 is broken"):
        next(results)
