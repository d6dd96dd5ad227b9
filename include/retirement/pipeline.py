"""Entry points of the pipeline's phases, one function per DAG task.

Each takes explicit inputs (plan path, ledger, run id, actor), does one phase, records it in
the ledger and returns a small JSON-able summary for XCom. Each is safe to re-run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.plan import load_plan

if TYPE_CHECKING:
    from retirement.ledger import Ledger

log = logging.getLogger(__name__)


def ledger_run_id(dag_id: str, airflow_run_id: str) -> str:
    """The ledger's id for one DAG run: stable across task retries and re-runs."""
    return f"{dag_id}:{airflow_run_id}"


def check_plan(plan_path: str, *, ledger: Ledger, run_id: str, actor: str) -> dict[str, Any]:
    """Validate the plan and open the run in the ledger (once, however often re-run)."""
    plan = load_plan(plan_path)
    started = ledger.start_run(
        run_id, plan_name=plan.name, plan_sha256=plan.sha256, scenario=plan.scenario, actor=actor
    )
    log.info(
        "plan %s (sha256 %s) %s run %s",
        plan.name,
        plan.sha256[:12],
        "opened" if started else "already opened",
        run_id,
    )
    return {
        "run_id": run_id,
        "plan": plan.name,
        "plan_sha256": plan.sha256,
        "sources": [s.name for s in plan.sources],
    }
