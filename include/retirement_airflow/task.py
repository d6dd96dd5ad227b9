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
    """Open the ledger for one task; an error that no retry can help (``retryable`` False:
    a wrong plan, a failed gate, a refused deletion, a changed host key, a broken chain)
    fails the task at once, without its retries."""
    from retirement.errors import RetirementError
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
    except RetirementError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    finally:
        ledger.close()
