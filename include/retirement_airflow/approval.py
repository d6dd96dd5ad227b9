"""The human approval before deletion: Airflow's ApprovalOperator, recorded in the ledger.

The approver sees the body written by ``deletion_request`` (what will be destroyed and the
proof). Their answer (who, when, approve or reject) is appended to the ledger before the
operator lets the deletion run or skips it; a rejection ends the run cleanly with nothing
deleted. The certificates name the approver from that ledger event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


def _who(user: Any) -> str:
    if isinstance(user, dict):
        return str(user.get("name") or user.get("id") or user)
    return str(user)


class DeletionApproval(ApprovalOperator):
    """ApprovalOperator whose decision goes into the retirement ledger, bound to the deletion
    request whose text the approver was shown."""

    def __init__(self, *, plan_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_path = plan_path

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from retirement.phases.delete import record_decision
        from retirement_airflow.task import run_context

        chosen = event.get("chosen_options") or []
        if "error" not in event and chosen:
            responded_at = event.get("responded_at")
            shown = context["ti"].xcom_pull(task_ids="deletion_request", key="request")
            with run_context(self.plan_path) as ctx:
                record_decision(
                    ctx,
                    approved=chosen[0] == self.APPROVE,
                    by=_who(event.get("responded_by_user")),
                    at=responded_at.isoformat()
                    if isinstance(responded_at, datetime)
                    else str(responded_at),
                    request=shown or None,  # the request whose text the approver was shown
                )
        return super().execute_complete(context=context, event=event)
