"""plan_check: validate the plan and open the run with the plan's exact text."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.plan.loader import load_bytes, read_bytes

if TYPE_CHECKING:
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)


def check_plan(ctx: RunContext, *, preview: bool = False) -> dict[str, Any]:
    """Validate the plan file (every problem at once) and open the run in the ledger with
    its exact text (once, however often re-run: a re-run keeps the plan the run was opened
    with, and says so when the file changed since); as a preview with ``preview``."""
    raw = read_bytes(Path(ctx.plan_path))  # read once: what is checked is what is kept
    checked = load_bytes(ctx.plan_path, raw)
    if not preview and ctx.ledger.run_state(ctx.run_id) is None:  # a new run that backs up
        refuse_erased_archives(ctx, checked)  # (a re-run keeps its course; a preview, no keys)
    started = ctx.ledger.start_run(
        ctx.run_id,
        plan_name=checked.name,
        plan_sha256=checked.sha256,
        scenario=checked.scenario,
        actor=ctx.actor,
        plan_text=raw.decode("utf-8"),
        preview=preview,
    )
    plan = ctx.plan
    if plan.sha256 != checked.sha256:
        log.warning(
            "%s changed since run %s was opened (sha256 %s… then, %s… now): this run keeps the "
            "plan it was opened with; trigger a new run to use the new one",
            ctx.plan_path,
            ctx.run_id,
            plan.sha256[:12],
            checked.sha256[:12],
        )
    log.info(
        "plan %s (sha256 %s) %s %s %s",
        plan.name,
        plan.sha256[:12],
        "opened" if started else "already opened",
        "preview" if preview else "run",
        ctx.run_id,
    )
    return {
        "run_id": ctx.run_id,
        "plan": plan.name,
        "plan_sha256": plan.sha256,
        "sources": [s.name for s in plan.sources],
    }


def refuse_erased_archives(ctx: RunContext, plan: Plan) -> None:
    """A plan whose archive identity was crypto-erased (its retention ended) can make no new
    backup under that name: said here, before anything runs, instead of failing in backup."""
    from retirement.errors import KeyDestroyed

    erased = [d for d in sorted(plan.dispositions) if ctx.key_store.destroyed(plan.name, d)]
    if erased:
        where = ", ".join(f"{plan.name}/{d}" for d in erased)
        raise KeyDestroyed(
            f"the archive identity of {where} was crypto-erased (its retention ended; see "
            "archive_expired in the ledger): a new run of plan "
            f"'{plan.name}' could make no backup encrypted to it. Give the plan a new `name` "
            "(a new DAG with new keys), or, to keep the name, move the key store's "
            f"{plan.name}/<disposition>.recipient file aside so that a new key is made (the "
            "erase stays recorded in the ledger and its certificate)"
        )


def source_names(ctx: RunContext) -> list[str]:
    """plan_check as the DAG needs it: the plan's sources, for the mapped inventory."""
    names: list[str] = check_plan(ctx)["sources"]
    return names
