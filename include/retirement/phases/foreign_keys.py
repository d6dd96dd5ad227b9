"""The run's foreign keys: checked against the plan at gate_inventory, and read again when
the deletion is requested to order it (children before parents, each linked group in one
task) and to keep at the source every parent a kept table still references."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

from retirement.deletion.foreign_keys import (
    ForeignKey,
    ForeignKeyCycle,
    Kept,
    deletion_order,
    kept_parents,
    linked_groups,
)
from retirement.errors import DeletionRefused, SourceError
from retirement.model.ids import DatasetId

if TYPE_CHECKING:
    from collections.abc import Iterable

    from retirement.phases.context import RunContext

_SQL = ("postgres", "mysql", "sqlite")


def source_keys(ctx: RunContext, source_name: str) -> list[ForeignKey]:
    """The foreign keys between tables of the source's schema, read from the database."""
    from retirement.sources.capabilities import ForeignKeyReader

    if ctx.plan.source(source_name).kind not in _SQL:
        return []
    with ctx.source(source_name) as source:
        if not isinstance(source, ForeignKeyReader):
            return []
        try:
            return source.foreign_keys()
        except SourceError as exc:
            raise SourceError(f"source {source_name}: {exc}") from exc


def _rules(ctx: RunContext, source_name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in ctx.plan.datasets:
        ds = DatasetId.parse(rule.dataset)
        if rule.on_referenced and ds.source == source_name:
            out[ds.object] = rule.on_referenced
    return out


def _by_source(datasets: Iterable[str]) -> dict[str, list[DatasetId]]:
    ids = sorted((DatasetId.parse(d) for d in datasets), key=lambda d: d.source)
    return {s: list(group) for s, group in groupby(ids, key=lambda d: d.source)}


def plan_problems(ctx: RunContext, datasets: Iterable[str]) -> list[str]:
    """gate_inventory's foreign-key check: every inventoried table is deleted, so a kept
    table (not in the inventory) referencing one needs the plan's on_referenced; a cycle
    cannot be ordered."""
    problems: list[str] = []
    for source_name, ids in _by_source(datasets).items():
        keys = source_keys(ctx, source_name)
        if not keys:
            continue
        tables = [d.object for d in ids]  # tables: no sheets
        kept = kept_parents(keys, tables, _rules(ctx, source_name), source=source_name)
        problems += kept.problems
        remaining = [t for t in tables if t not in kept.parents]
        try:
            deletion_order(remaining, [(k.child, k.parent) for k in keys])
        except ForeignKeyCycle as exc:
            problems.append(f"source {source_name}: {exc}")
    return problems


@dataclass(frozen=True)
class DeletionOrder:
    """The deletable datasets in groups (each in deletion order), the parents kept at the
    source with why, and what a cascading constraint does to rows the plan keeps."""

    groups: list[list[str]]
    kept: dict[str, str]
    cascades: list[str]


def order_deletion(ctx: RunContext, deletable: list[str]) -> DeletionOrder:
    """The deletable datasets in groups linked by foreign keys, each in deletion order, and
    the parents to keep (with why): those a kept table still references under the plan's
    ``keep``, or without a rule (a child that was not deletable after all, e.g. its
    delivery failed). A ``cascade`` the constraint cannot honour is refused."""
    groups: list[list[str]] = []
    kept_all: dict[str, str] = {}
    cascades: list[str] = []
    for source_name, ids in _by_source(deletable).items():
        keys = source_keys(ctx, source_name)
        if not keys:  # files, objects, tables without foreign keys: each on its own
            groups += [[str(d)] for d in ids]
            continue
        tables = [d.object for d in ids]
        kept: Kept = kept_parents(
            keys, tables, _rules(ctx, source_name), source=source_name, default="keep"
        )
        if kept.problems:
            raise DeletionRefused("; ".join(kept.problems) + ": nothing was put to an approval")
        edges = [(k.child, k.parent) for k in keys]
        remaining = [t for t in tables if t not in kept.parents]
        for group in linked_groups(remaining, edges):
            groups.append([str(DatasetId(source_name, t)) for t in group])
        kept_all.update({str(DatasetId(source_name, t)): why for t, why in kept.parents.items()})
        cascades += kept.cascades
    return DeletionOrder(groups, kept_all, cascades)
