"""What every task of the retirement DAG does around its one library call."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan


@dataclass(frozen=True)
class Phase:
    """The ledger, this run's ledger id, the acting task and the run's logical time."""

    ledger: Ledger
    run_id: str
    actor: str
    now: str

    def plan(self, plan_path: str) -> Plan:
        """The plan this run was checked with (kept in the ledger), never the file as it is
        now: an edit while the run waits changes nothing in it."""
        from retirement.phases.pinned import run_plan

        return run_plan(self.ledger, self.run_id, plan_path)


@contextmanager
def phase() -> Iterator[Phase]:
    """Open the ledger for one task; a wrong plan or a failed gate fails the task at once.

    PlanError, GateFailed and HostKeyMismatch become AirflowFailException: no retry makes
    them pass (a changed host key needs a person to look at it).
    """
    from retirement.destinations.sftp import HostKeyMismatch
    from retirement.errors import GateFailed, PlanError
    from retirement.phases.inventory import ledger_run_id
    from retirement_airflow.connections import open_ledger

    context = get_current_context()
    ti = context["ti"]
    ledger = open_ledger()
    try:
        yield Phase(
            ledger=ledger,
            run_id=ledger_run_id(ti.dag_id, context["run_id"]),
            actor=f"airflow:{ti.dag_id}.{ti.task_id}",
            now=context["dag_run"].run_after.isoformat(),
        )
    except (PlanError, GateFailed, HostKeyMismatch) as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        ledger.close()
