"""A run's failure and recovery, as the task wrapper (Airflow's glue, or a CLI) reports them.

When a task fails for good (no retry follows), the run is marked ``failed`` with what
failed and where the run stood; when that same task (same map index) later succeeds (an
operator cleared and re-ran it), the run returns to where it stood. The other states are
set by the phases that reach them (deletion_request, the approval, seal).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.errors import RetirementError
from retirement.model.state import RunState

if TYPE_CHECKING:
    from retirement.phases.context import RunContext

log = logging.getLogger(__name__)

_MESSAGE = 500  # characters of the error kept in the ledger (messages mask identifiers)


def run_failed(ctx: RunContext, task: dict[str, Any], exc: BaseException) -> None:
    """Mark the run failed by ``task`` (``{"task", "map_index"}``). Never raises: the task's
    own error is what the operator must see."""
    try:
        now = ctx.ledger.run_state(ctx.run_id)
        if now is None or now is RunState.FAILED:
            return  # not begun (plan_check refused it), or failed already
        error = f"{type(exc).__name__}: {exc}"[:_MESSAGE]
        payload = {**task, "was": now.value, "error": error}
        ctx.ledger.set_run_state(ctx.run_id, RunState.FAILED, actor=ctx.actor, payload=payload)
    except (RetirementError, OSError) as err:  # the ledger itself may be what failed
        log.warning("could not record the run as failed: %s", err)


def run_recovered(ctx: RunContext, task: dict[str, Any]) -> None:
    """The task succeeded: if the run failed by this very task, it is back where it stood."""
    if ctx.ledger.run_state(ctx.run_id) is not RunState.FAILED:
        return
    failures = ctx.ledger.events_of(ctx.run_id, ("run_failed",))
    last = failures[-1].payload if failures else {}
    if {k: last.get(k) for k in task} != task:
        return  # another task failed it: that one must succeed first
    was = RunState(str(last.get("was", RunState.RUNNING.value)))
    ctx.ledger.set_run_state(ctx.run_id, was, actor=ctx.actor, payload={"recovered": task})
