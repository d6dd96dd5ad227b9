"""Mapped tasks over batches: at most max_tasks, contiguous, near-equal, nothing lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retirement.phases.batching import batches, label


def test_one_item_per_task_when_they_fit() -> None:
    assert batches(["a", "b", "c"], 3) == [["a"], ["b"], ["c"]]
    assert batches([], 5) == []


def test_beyond_max_tasks_items_are_batched() -> None:
    assert batches(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert label(["crm.a", "crm.b", "crm.c"]) == "crm.a (+2 more)"
    assert label(["crm.a"]) == "crm.a"


def test_max_tasks_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        batches(["a"], 0)


@given(st.lists(st.integers(), max_size=3000), st.integers(min_value=1, max_value=1100))
def test_batches_keep_every_item_in_order_within_the_limit(items: list[int], limit: int) -> None:
    got = batches(items, limit)
    assert [x for batch in got for x in batch] == items
    assert len(got) <= limit
    assert all(batch for batch in got)
