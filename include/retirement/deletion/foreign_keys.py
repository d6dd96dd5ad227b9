"""Foreign keys between the tables of a SQL source: the order of deletion (children before
their parents) and what a plan must say when it deletes a parent whose child it keeps.

The constraints are read from the database itself (SQLAlchemy's inspector, one query per
schema), over every table of the source's schema, not only the plan's: a table the plan
leaves out (``exclude``) is a child the plan keeps. Tables of other schemas that reference
ours are not seen (see docs/deletion.md).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retirement.errors import DeletionRefused

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import sqlalchemy as sa

# ON DELETE actions under which deleting a parent row leaves no dangling child row.
_CASCADING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


@dataclass(frozen=True)
class ForeignKey:
    """Table ``child`` references table ``parent`` through constraint ``name``."""

    name: str
    child: str
    parent: str
    ondelete: str = "NO ACTION"

    def __str__(self) -> str:
        return f"{self.child} -> {self.parent} (constraint {self.name}, ON DELETE {self.ondelete})"


class ForeignKeyCycle(DeletionRefused):
    """Tables whose foreign keys form a cycle: no order deletes children first."""


def read_foreign_keys(engine: sa.Engine, schema: str | None) -> list[ForeignKey]:
    """Every foreign key between two tables of ``schema`` (the default one when None)."""
    import sqlalchemy as sa

    inspector = sa.inspect(engine)
    own = {None, schema, inspector.default_schema_name if schema is None else schema}
    found = []
    for (_, child), keys in inspector.get_multi_foreign_keys(schema=schema).items():
        for fk in keys:
            if fk.get("referred_schema") not in own:
                continue
            ondelete = str((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
            found.append(
                ForeignKey(
                    name=str(fk.get("name") or f"{child}({', '.join(fk['constrained_columns'])})"),
                    child=child,
                    parent=fk["referred_table"],
                    ondelete=ondelete,
                )
            )
    return sorted(found, key=lambda k: (k.child, k.parent, k.name))


def deletion_order(tables: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """``tables`` so that every child (``edges`` are ``(child, parent)``) comes before its
    parent; otherwise in the given order. A table referencing itself is no constraint on
    the order; edges to tables not in ``tables`` are ignored; a cycle is refused."""
    index = {t: i for i, t in enumerate(tables)}
    children: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child != parent and child in index and parent in index:
            children[parent].add(child)
    waiting = {t: len(c) for t, c in children.items()}
    parents: dict[str, list[str]] = {t: [] for t in tables}
    for parent, kids in children.items():
        for kid in kids:
            parents[kid].append(parent)
    ready = [index[t] for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        table = tables[heapq.heappop(ready)]
        order.append(table)
        for parent in parents[table]:
            waiting[parent] -= 1
            if waiting[parent] == 0:
                heapq.heappush(ready, index[parent])
    if len(order) < len(index):
        stuck = sorted(t for t, n in waiting.items() if n > 0)
        raise ForeignKeyCycle(
            f"the foreign keys between {', '.join(stuck)} form a cycle: no order deletes "
            "every child before its parent; break the cycle (or delete these tables by hand)"
        )
    return order


def linked_groups(tables: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """``tables`` in groups linked by foreign keys, each group in deletion order; groups in
    the order of their first table (a group is deleted by one task, in its order)."""
    root = {t: t for t in tables}

    def find(t: str) -> str:
        while root[t] != t:
            root[t] = root[root[t]]
            t = root[t]
        return t

    pairs = [(c, p) for c, p in edges if c in root and p in root]
    for child, parent in pairs:
        root[find(child)] = find(parent)
    members: dict[str, list[str]] = {}
    for t in tables:
        members.setdefault(find(t), []).append(t)
    return [deletion_order(group, pairs) for group in members.values()]


@dataclass(frozen=True)
class Kept:
    """The outcome of checking a plan's deletions against the foreign keys: the parents
    kept at the source (with why) and the problems the plan must resolve."""

    parents: Mapping[str, str]
    problems: tuple[str, ...]
    cascades: tuple[str, ...] = ()  # what the constraints' ON DELETE does to kept rows


def kept_parents(
    keys: Sequence[ForeignKey],
    deleted: Iterable[str],
    on_referenced: Mapping[str, str],
    *,
    source: str,
    default: str | None = None,
) -> Kept:
    """Which of the ``deleted`` tables a kept table references, and what the plan says about
    each (``on_referenced``: table -> "keep" or "cascade"). A parent kept under "keep" is
    itself a kept child of its own parents, up the chain. ``default``: what a parent
    without a rule gets (None: a problem)."""
    deleting = set(deleted)
    kept: dict[str, str] = {}
    problems: dict[tuple[str, str], str] = {}
    cascades: dict[tuple[str, str], str] = {}
    changed = True
    while changed:
        changed = False
        for fk in keys:
            if fk.child == fk.parent or fk.parent not in deleting or fk.child in deleting:
                continue
            how = on_referenced.get(fk.parent, default)
            if how == "keep":
                deleting.discard(fk.parent)
                kept[fk.parent] = f"kept at the source: {source}.{fk.child} references it ({fk})"
                changed = True
            elif how == "cascade" and fk.ondelete in _CASCADING:
                cascades[(fk.parent, fk.name)] = (
                    f"{source}.{fk.parent} (on_referenced: cascade): ON DELETE {fk.ondelete} of "
                    f"constraint {fk.name} changes the rows of {source}.{fk.child} that "
                    "reference deleted rows; the plan keeps that table, so those rows have no "
                    "backup in this run"
                )
            elif how == "cascade":
                problems[(fk.parent, fk.name)] = (
                    f"{source}.{fk.parent}: on_referenced: cascade, but {source}.{fk.child} "
                    f"references it through constraint {fk.name} with ON DELETE {fk.ondelete}: "
                    "the database would refuse to delete its rows; use on_referenced: keep, "
                    f"or bring {source}.{fk.child} into the plan"
                )
            elif how is None:
                problems[(fk.parent, fk.name)] = (
                    f"{source}.{fk.parent} is deleted but {source}.{fk.child}, which the plan "
                    f"keeps, references it through constraint {fk.name} (ON DELETE "
                    f"{fk.ondelete}): bring {source}.{fk.child} into the plan, or say how in "
                    f"a datasets rule for {source}.{fk.parent} with on_referenced: keep "
                    "(keep it at the source) or on_referenced: cascade (the constraint's ON "
                    "DELETE action changes the kept rows)"
                )
    return Kept(
        kept,
        tuple(problems[k] for k in sorted(problems)),
        tuple(cascades[k] for k in sorted(cascades) if k[0] not in kept),
    )
