"""The order of deletion over foreign keys (children before parents), the groups a task
deletes whole, and what a plan must say about a parent whose child it keeps: properties
over random graphs of tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retirement.deletion.foreign_keys import (
    ForeignKey,
    ForeignKeyCycle,
    deletion_order,
    kept_parents,
    linked_groups,
)
from retirement.phases.batching import grouped_batches

Graph = tuple[list[str], list[tuple[str, str]]]


@st.composite
def dags(draw: st.DrawFn) -> Graph:
    """Tables in a random order and random (child, parent) edges that form no cycle
    (a random rank: a child always ranks above its parent), self-references included."""
    n = draw(st.integers(0, 14))
    tables = [f"t{i}" for i in range(n)]
    rank = draw(st.permutations(range(n))) if n else []
    edges = []
    if n:
        pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))
        for a, b in draw(st.lists(pairs, max_size=3 * n)):
            if a == b:
                edges.append((tables[a], tables[a]))  # a table referencing itself
            elif rank[a] != rank[b]:
                child, parent = (a, b) if rank[a] > rank[b] else (b, a)
                edges.append((tables[child], tables[parent]))
    outside = draw(st.lists(st.sampled_from(["x_kept", "y_other"]), max_size=2))
    edges += [(o, tables[0]) for o in outside if tables] + [
        (tables[0], o) for o in outside if tables
    ]
    shuffled = draw(st.permutations(tables)) if tables else []
    return list(shuffled), edges


@given(dags())
def test_every_child_is_deleted_before_its_parent(
    graph: Graph,
) -> None:
    tables, edges = graph
    order = deletion_order(tables, edges)
    assert sorted(order) == sorted(tables)  # each table once, none added
    at = {t: i for i, t in enumerate(order)}
    for child, parent in edges:
        if child != parent and child in at and parent in at:
            assert at[child] < at[parent], (child, parent, order)


@given(dags())
def test_without_foreign_keys_the_order_is_the_given_one(
    graph: Graph,
) -> None:
    tables, _ = graph
    assert deletion_order(tables, []) == tables


@given(dags(), st.integers(1, 6))
def test_linked_tables_stay_in_one_task_in_their_order(graph: Graph, max_tasks: int) -> None:
    tables, edges = graph
    groups = linked_groups(tables, edges)
    batches = grouped_batches(groups, max_tasks)
    assert len(batches) <= max_tasks
    assert sorted(t for b in batches for t in b) == sorted(tables)
    task_of = {t: i for i, b in enumerate(batches) for t in b}
    place = {t: i for b in batches for i, t in enumerate(b)}
    for child, parent in edges:
        if child != parent and child in task_of and parent in task_of:
            assert task_of[child] == task_of[parent]
            assert place[child] < place[parent]


@pytest.mark.parametrize(
    "edges",
    [
        pytest.param([("a", "b"), ("b", "a")], id="two tables"),
        pytest.param([("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")], id="three and a child"),
    ],
)
def test_a_cycle_is_refused_naming_its_tables(edges: list[tuple[str, str]]) -> None:
    with pytest.raises(ForeignKeyCycle, match=r"between a, b.* form a cycle"):
        deletion_order(["a", "b", "c", "d"], edges)


CHAIN = [
    ForeignKey("orders_customer_fk", "orders", "customers"),
    ForeignKey("lines_order_fk", "order_lines", "orders", "CASCADE"),
    ForeignKey("notes_customer_fk", "notes", "customers"),
]


def test_a_kept_child_of_a_deleted_parent_is_a_problem_naming_both_and_the_constraint() -> None:
    kept = kept_parents(CHAIN, ["customers", "orders", "order_lines"], {}, source="crm")
    assert kept.parents == {}
    assert len(kept.problems) == 1
    assert "crm.customers is deleted but crm.notes" in kept.problems[0]
    assert "constraint notes_customer_fk" in kept.problems[0]


def test_keep_keeps_the_parent_and_its_own_parents_up_the_chain() -> None:
    # order_lines is kept; orders says keep, so customers is referenced by a kept table too
    rules = {"orders": "keep", "customers": "keep"}
    kept = kept_parents(CHAIN, ["customers", "orders", "notes"], rules, source="crm")
    assert set(kept.parents) == {"orders", "customers"}
    assert kept.problems == ()
    assert "lines_order_fk" in kept.parents["orders"]


def test_cascade_needs_a_constraint_that_cascades() -> None:
    ok = kept_parents(CHAIN, ["orders"], {"orders": "cascade"}, source="crm")
    assert ok.problems == ()  # lines_order_fk is ON DELETE CASCADE
    assert len(ok.cascades) == 1
    assert (
        "ON DELETE CASCADE of constraint lines_order_fk changes the rows of crm.order_lines"
        in (ok.cascades[0])
    )
    refused = kept_parents(CHAIN, ["customers"], {"customers": "cascade"}, source="crm")
    assert len(refused.problems) == 2
    assert all("ON DELETE NO ACTION" in p for p in refused.problems)
