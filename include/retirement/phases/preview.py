"""preview: a run that checks the plan, inventories the sources and reports what a real run
would do, then stops. Nothing is written to a source, a destination or the key store.

The run is opened as a preview (``preview_started``, run state ``preview``: the ledger never
lets it be approved, deleting or sealed); each source's inventory is recorded as one
``preview_inventoried`` event (no dataset gets a state: nothing can be backed up or deleted
under this run), and the report as ``preview_reported`` with its files' sha256. The DAG's
``preview`` task stops a preview run there and lets a real run go on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.errors import PreviewOnly
from retirement.inventory.scan import DatasetReport

if TYPE_CHECKING:
    from retirement.phases.context import RunContext

log = logging.getLogger(__name__)

INVENTORIED = "preview_inventoried"
REPORTED = "preview_reported"


def open_preview(ctx: RunContext) -> list[str]:
    """plan_check for a preview: the plan validated, the run opened as a preview; its sources."""
    from retirement.phases.plan_check import check_plan

    names: list[str] = check_plan(ctx, preview=True)["sources"]
    return names


def record_source(ctx: RunContext, seen: dict[str, Any], reports: list[DatasetReport]) -> None:
    """A source's inventory in a preview run: one event, no dataset state (a re-run that
    finds the same adds nothing)."""
    payload = {**seen, "reports": [r.to_json() for r in reports]}
    source = seen["source"]
    before = [e.payload for e in ctx.ledger.events_of(ctx.run_id, (INVENTORIED,))]
    if [p for p in before if p.get("source") == source][-1:] != [payload]:
        ctx.ledger.append(INVENTORIED, actor=ctx.actor, run_id=ctx.run_id, payload=payload)


def previewed(ctx: RunContext) -> tuple[list[DatasetReport], list[str]]:
    """The preview's inventory (each source's latest) and its warnings."""
    latest: dict[str, dict[str, Any]] = {}
    for ev in ctx.ledger.events_of(ctx.run_id, (INVENTORIED,)):
        latest[str(ev.payload["source"])] = ev.payload
    reports = [DatasetReport.from_json(r) for s in sorted(latest) for r in latest[s]["reports"]]
    warnings = [w for s in sorted(latest) for w in latest[s].get("warnings", [])]
    return reports, warnings


def report(ctx: RunContext) -> dict[str, Any]:
    """Write the preview report (JSON and HTML under ``<output>/preview/<run>/``) and record
    it; what it says in short."""
    from retirement.evidence.preview import count_notices, preview_document, write_preview
    from retirement.phases.gate_inventory import plan_problems

    if not ctx.ledger.is_preview(ctx.run_id):
        raise PreviewOnly(f"run {ctx.run_id} is not a preview: it has no preview report")
    plan = ctx.plan
    reports, warnings = previewed(ctx)
    document = preview_document(
        plan,
        reports,
        today=ctx.today,
        notices=count_notices(plan, reports, ctx.source),
        problems=[*plan_problems(plan, reports), *warnings],
        run_id=ctx.run_id,
        generated=ctx.stamp,
    )
    files = write_preview(document, ctx.layout.preview(ctx.run_id))
    summary = {
        "totals": {k: v for k, v in document["totals"].items() if k != "by_disposition"},
        "problems": len(document["problems"]),
        **{kind: str(path) for kind, (path, _sha) in files.items()},
        **{f"{kind}_sha256": sha for kind, (_path, sha) in files.items()},
    }
    ctx.ledger.append(REPORTED, actor=ctx.actor, run_id=ctx.run_id, payload=summary)
    log.info("preview of %s: %s", plan.name, files["html"][0])
    return summary


def preview_or_go_on(ctx: RunContext) -> bool:
    """The DAG's ``preview`` task: in a preview run, write the report and stop the run
    (False: every later task is skipped); a real run goes on (True)."""
    if not ctx.ledger.is_preview(ctx.run_id):
        log.info("run %s is not a preview: it goes on to gate_inventory", ctx.run_id)
        return True
    done = report(ctx)
    log.info(
        "preview only: %s datasets, %s rows would be deleted at the source; nothing after "
        "this task runs (report %s)",
        done["totals"]["datasets"],
        f"{done['totals']['deleted_rows']:,}",
        done["html"],
    )
    return False


def refuse_preview(ctx: RunContext, step: str) -> None:
    """A step that acts (backup, transfer, approval, deletion, seal) refuses a preview run."""
    if ctx.ledger.is_preview(ctx.run_id):
        raise PreviewOnly(
            f"run {ctx.run_id} is a preview: {step} never runs in it (trigger a run without "
            "dry_run to retire the data)"
        )
