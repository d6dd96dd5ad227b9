"""The human approval before deletion: Airflow's ApprovalOperator, recorded in the ledger.

The approver sees the body written by ``deletion_request`` (what will be destroyed, the
proof, the plan's sha256 and the ledger's chain head). Only the plan's approvers may answer:
each approval task is assigned (Airflow's ``assigned_users``, enforced by the API server) to
the approvers who have not approved another step of the same request, so ``approval.required``
steps need as many distinct people. Their answer (who, when, approve or reject) is appended to
the ledger before the operator lets the deletion run or skips it; a rejection ends the run
cleanly with nothing deleted; a wait longer than ``approval.timeout`` fails the run with
nothing deleted and the timeout in the ledger. The certificates name every approver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException


def _who(user: Any) -> tuple[str, str | None]:
    """(name, Airflow user id) of the person who answered."""
    if isinstance(user, dict):
        user_id = user.get("id")
        return str(user.get("name") or user_id or user), None if user_id is None else str(user_id)
    return str(user), None


def approval_task_id(step: int) -> str:
    return "approve_deletion" if step == 1 else f"approve_deletion_{step}"


def _identity(user: Any) -> dict[str, str]:
    """The approver as Airflow's auth manager names them: user id and display name."""
    if isinstance(user, dict):
        return {k: str(user[k]) for k in ("id", "name") if user.get(k) is not None}
    return {"name": str(user)}


class Announcement(BaseNotifier):
    """A notifier of a waiting approval whose failure is logged, not raised: a message that
    cannot be sent (no such connection, the server down) must not fail the approval, which
    waits under Required actions all the same (Airflow's operator lets it raise)."""

    def __init__(self, notifier: BaseNotifier) -> None:
        super().__init__()
        self.notifier = notifier

    def notify(self, context: Any) -> None:
        try:
            self.notifier(context)
        except Exception:  # any notifier's failure: the approval waits all the same
            self.log.exception("the approval waits; its notification could not be sent")


class DeletionApproval(ApprovalOperator):
    """ApprovalOperator whose decision goes into the retirement ledger, bound to the deletion
    request whose text the approver was shown; step ``step`` of ``required``."""

    def __init__(self, *, plan_path: str, step: int = 1, required: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_path = plan_path
        self.step = step
        self.required = required
        self.answer_link = ""

    def execute(self, context: Any) -> Any:
        """Assign the step to the approvers who may still answer it, say which step it is,
        then wait (Airflow notifies and parks the task)."""
        from retirement.phases.approval import remaining_approvers
        from retirement_airflow.task import run_context

        shown = context["ti"].xcom_pull(task_ids="deletion_request", key="request")
        with run_context(self.plan_path) as ctx:
            users = remaining_approvers(ctx, self.step, shown or None)
        if not users:
            raise AirflowFailException(
                f"approval {self.step} of {self.required}: none of the plan's approvers is "
                "left to answer it (each approves one step): name more approvers"
            )
        self.assigned_users = users  # type: ignore[assignment]
        names = ", ".join(f"{u['name']} (user {u['id']})" for u in users)
        self.body = (
            f"**Approval {self.step} of {self.required}**: may be answered by {names}.\n\n"
            + (self.body or "")
        )
        self.answer_link = self._link(context)
        self.notifiers = [Announcement(n) for n in self.notifiers]
        return super().execute(context)

    def _link(self, context: Any) -> str:
        """The page where the approvers answer (api.base_url, else the path on the server)."""
        ti = context["task_instance"]
        try:
            return self.generate_link_to_ui(task_instance=ti)
        except ValueError:  # no api.base_url configured
            return f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from retirement.phases.approval import record_decision, record_timeout
        from retirement_airflow.task import run_context

        if event.get("error_type") == "timeout":
            with run_context(self.plan_path) as ctx:  # (raising inside: the run stays failed)
                waited = str(self.response_timeout) if self.response_timeout else None
                record_timeout(ctx, step=self.step, waited=waited, at=ctx.stamp)
                raise AirflowFailException(
                    f"approval {self.step} of {self.required} was not answered within "
                    f"{self.response_timeout}: the run ends with nothing deleted"
                )
        chosen = event.get("chosen_options") or []
        if "error" not in event and chosen:
            responded_at = event.get("responded_at")
            shown = context["ti"].xcom_pull(task_ids="deletion_request", key="request")
            name, user = _who(event.get("responded_by_user"))
            with run_context(self.plan_path) as ctx:
                record_decision(
                    ctx,
                    approved=chosen[0] == self.APPROVE,
                    by=name,
                    user=user,
                    step=self.step,
                    approver=_identity(event.get("responded_by_user")),
                    at=responded_at.isoformat()
                    if isinstance(responded_at, datetime)
                    else str(responded_at),
                    request=shown or None,  # the request whose text the approver was shown
                )
        return super().execute_complete(context=context, event=event)
