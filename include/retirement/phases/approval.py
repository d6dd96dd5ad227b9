"""The answers to a deletion request: who approved it, whether enough distinct people did,
and a wait that ran out.

A plan's ``approval.required`` is how many distinct approvers must approve (a two-person
rule with 2); the DAG asks them one after the other (approval step 1, 2, ...). Each answer
is a chained event bound to the request it answers; the latest answer of each step counts,
and the same person may not answer two steps. The deletion may start only when the steps
1..required all stand approved by distinct people: the answer that completes them moves the
run to ``deleting`` and is what ``ProofBook`` and the certificates read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement.errors import DeletionRefused
from retirement.model.state import RunState

if TYPE_CHECKING:
    from retirement.phases.context import RunContext

ANSWERS = ("deletion_approved", "deletion_rejected")


def latest_request(ctx: RunContext) -> str | None:
    asked = ctx.ledger.events_of(ctx.run_id, ("deletion_requested",))
    return asked[-1].hash if asked else None


def standing(ctx: RunContext, request: str | None) -> dict[int, dict[str, Any]]:
    """Step -> its latest answer to ``request`` (``approved``, ``by``, ``user``, ``at``)."""
    steps: dict[int, dict[str, Any]] = {}
    for ev in ctx.ledger.events_of(ctx.run_id, ANSWERS):
        p = ev.payload
        if p.get("request") == request:
            steps[int(p.get("step", 1))] = {
                "approved": ev.kind == "deletion_approved",
                "by": p.get("approved_by"),
                "user": p.get("user"),
                "at": p.get("approved_at"),
            }
    return steps


def remaining_approvers(ctx: RunContext, step: int, request: str | None) -> list[dict[str, str]]:
    """The plan's approvers who may answer ``step``: all but those whose approval stands for
    another step (as Airflow's ``assigned_users``: id and name)."""
    taken = {a["user"] for s, a in standing(ctx, request).items() if s != step and a["approved"]}
    return [
        {"id": a.user, "name": a.name}
        for a in ctx.plan.approval.approvers
        if a.user is not None and a.user not in taken
    ]


def record_decision(
    ctx: RunContext,
    *,
    approved: bool,
    by: str,
    at: str,
    auto: bool = False,
    request: str | None = None,
    user: str | None = None,
    step: int = 1,
    approver: dict[str, str] | None = None,
) -> bool:
    """Record one answer to a deletion request (the latest one, unless ``request`` names
    the hash of the one that was shown); True when the deletion now stands approved by as
    many distinct approvers as the plan requires. An approver who already approved another
    step of the same request is refused (DeletionRefused), and nothing is recorded."""
    from retirement.phases.preview import refuse_preview

    refuse_preview(ctx, "approve_deletion")
    request = request if request is not None else latest_request(ctx)
    required = 1 if auto else ctx.plan.approval.required
    steps = standing(ctx, request)
    _refuse_second_approval(steps, by=by, user=user, step=step, required=required)
    steps[step] = {"approved": approved, "by": by, "user": user, "at": at}
    approvals = [
        {"step": s, "by": a["by"], "user": a["user"], "at": a["at"]}
        for s, a in sorted(steps.items())
        if a["approved"] and s <= required
    ]
    complete = approved and len(approvals) >= required
    ctx.ledger.append(
        "deletion_approved" if approved else "deletion_rejected",
        actor=by,
        run_id=ctx.run_id,
        payload={
            "approved_by": by,
            "approved_at": at,
            "auto": auto,
            "approved": approved,
            "request": request,
            "user": user,
            "step": step,
            "required": required,
            "approvals": approvals,
            **({"approver": dict(approver)} if approver else {}),
        },
    )
    state = (
        RunState.DELETING
        if complete
        else RunState.REJECTED
        if not approved
        else RunState.AWAITING_APPROVAL
    )
    if ctx.ledger.run_state(ctx.run_id) is not state or state is not RunState.AWAITING_APPROVAL:
        ctx.ledger.set_run_state(ctx.run_id, state, actor=by, payload={"request": request})
    return complete


def _refuse_second_approval(
    steps: dict[int, Any], *, by: str, user: str | None, step: int, required: int
) -> None:
    """DeletionRefused when ``user`` already approved another step of the same request."""
    for other, answer in steps.items():
        if other != step and answer["approved"] and user is not None and answer["user"] == user:
            raise DeletionRefused(
                f"{by} (user {user}) already approved this deletion request as approval "
                f"{other} of {required}: approval {step} must come from another approver"
            )


def record_timeout(ctx: RunContext, *, step: int, waited: str | None, at: str) -> None:
    """Nobody answered approval ``step`` in time: the run ends with nothing deleted, the
    timeout recorded in the chain and the run marked failed by the approval task."""
    request = latest_request(ctx)
    ctx.ledger.append(
        "approval_timed_out",
        actor=ctx.actor,
        run_id=ctx.run_id,
        payload={"request": request, "step": step, "timeout": waited, "at": at},
    )
    was = ctx.ledger.run_state(ctx.run_id)
    ctx.ledger.set_run_state(
        ctx.run_id,
        RunState.FAILED,
        actor=ctx.actor,
        payload={
            "task": ctx.actor.rsplit(".", 1)[-1],
            "map_index": -1,
            "was": (was or RunState.AWAITING_APPROVAL).value,
            "error": f"approval {step} was not answered within {waited}: nothing was deleted",
        },
    )
