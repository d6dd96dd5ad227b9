"""inventory: discover, scan and classify every dataset of one source (mapped per source)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.inventory.scan import DatasetReport, scan_dataset, with_dispositions
from retirement.model.state import DatasetState

if TYPE_CHECKING:
    from retirement.ledger.core import Ledger
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan
    from retirement.sources.base import Source

log = logging.getLogger(__name__)


def inventory_source(
    ctx: RunContext, source_name: str, *, full_scan: bool = True
) -> dict[str, Any]:
    """Discover, scan and classify every dataset of one source; record each in the ledger
    with the key deletion will use; warn of include patterns that match nothing."""
    plan = ctx.plan
    reports = []
    with ctx.source(source_name) as source:
        for ref in source.datasets():
            log.info("scanning %s", ref.qualified)
            report = scan_dataset(source, ref, plan.classification, full=full_scan)
            reports.append(_with_key(report, source, plan))
    reports = with_dispositions(reports, plan.disposition_for)
    warnings = unmatched_patterns(plan.source(source_name).include, reports)
    seen = {"source": source_name, "datasets": len(reports), "warnings": warnings}
    total = {"source": source_name, "datasets": len(reports), "rows": sum(r.rows for r in reports)}
    if ctx.ledger.is_preview(ctx.run_id):  # no dataset gets a state in a preview
        from retirement.phases.preview import record_source

        record_source(ctx, seen, reports)
        return total
    before = [
        e.payload
        for e in ctx.ledger.events_of(ctx.run_id, ("source_inventoried",))
        if e.payload.get("source") == source_name
    ]
    with ctx.ledger.batch():
        _record_inventory(reports, ctx)
        if before[-1:] != [seen]:  # a re-run that finds the same adds nothing
            ctx.ledger.append(
                "source_inventoried", actor=ctx.actor, run_id=ctx.run_id, payload=seen
            )
    return total


def unmatched_patterns(include: tuple[str, ...], reports: list[DatasetReport]) -> list[str]:
    """A warning for each include pattern of a source that matched no dataset (a typo in a
    pattern silently leaves data out of the retirement)."""
    import fnmatch

    from retirement.model.ids import DatasetId

    names = [DatasetId.parse(r.qualified).object for r in reports]
    return [
        f"source {reports[0].source if reports else '?'}: include pattern {p!r} matches nothing"
        for p in include
        if p != "*" and not any(fnmatch.fnmatchcase(n, p) for n in names)
    ]


def inventory_warnings(ledger: Ledger, run_id: str) -> list[str]:
    """Every source's warnings of the run's latest inventory."""
    latest: dict[str, list[str]] = {}
    for ev in ledger.events_of(run_id, ("source_inventoried",)):
        latest[str(ev.payload.get("source"))] = list(ev.payload.get("warnings", []))
    return [w for source in sorted(latest) for w in latest[source]]


def _with_key(report: DatasetReport, source: Source, plan: Plan) -> DatasetReport:
    """A table's key: the plan's rule's, else the primary key; a key that cannot address
    every row exactly is dropped (the table is then deleted whole, under its fingerprint)
    with the reason, or, when the plan named it, kept as a problem gate_inventory reports."""
    from dataclasses import replace

    from retirement.sources.capabilities import KeyedSource, RowDeleter
    from retirement.sources.keys import key_problem

    if report.kind != "table" or not isinstance(source, KeyedSource):
        return report
    if not isinstance(source, RowDeleter):
        return report
    rule = next((r for r in plan.datasets if r.dataset == report.qualified), None)
    planned = bool(rule and rule.key)
    columns = tuple(rule.key) if rule and rule.key else tuple(source.key_columns(report.name))
    problem = key_problem(source, report.name, columns, planned=planned) if columns else None
    key = {"columns": [] if problem and not planned else list(columns), "planned": planned}
    if problem:
        key["problem"] = problem
    return replace(report, key=key)


def _record_inventory(reports: list[DatasetReport], ctx: RunContext) -> None:
    """Record each report; a dataset whose deletion has begun keeps its state (a re-run of
    the inventory never steps it back: its backup and deletion stand)."""
    for r in reports:
        now = ctx.ledger.dataset_state(ctx.run_id, r.qualified)
        if now is not None and now.state.deletion_begun:
            log.info("%s: its deletion has begun: the inventory does not step it back", r.qualified)
            continue
        ctx.ledger.set_dataset_state(
            ctx.run_id,
            r.qualified,
            DatasetState.INVENTORIED,
            actor=ctx.actor,
            payload=r.to_json(),
            rows=r.rows,
            bytes=r.bytes,
            data_class=r.data_class,
            disposition=r.disposition,
        )
        log.info(
            "%s: %s rows, class %s, disposition %s",
            r.qualified,
            r.rows,
            r.data_class,
            r.disposition,
        )
