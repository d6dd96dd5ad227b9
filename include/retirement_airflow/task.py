"""The run context of one Airflow task, and what every task does around its library call."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.destinations.base import Destination
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan


@contextmanager
def run_context(plan_path: str) -> Iterator[RunContext]:
    """The RunContext of this task (the ledger opened, this run's ledger id, the acting task,
    the run's logical time, the key store, the output folder, connectors from Airflow's
    connections). An error no retry can help (``retryable`` False: a wrong plan, a failed
    gate, a refused deletion, a changed host key, a broken chain) fails the task at once,
    without its retries; the rest are retried as the plan's retries block says. A failure
    no retry follows marks the run failed in the ledger; the same task succeeding later
    (cleared and re-run) returns the run to where it stood (``phases.run_state``)."""
    from retirement.errors import RetirementError
    from retirement.phases.context import Layout, RunContext, ledger_run_id
    from retirement.phases.run_state import run_failed, run_recovered
    from retirement_airflow.connections import key_store, open_ledger, output_dir
    from retirement_airflow.connectors import AirflowConnectors

    context = get_current_context()
    ti = context["ti"]
    ledger = open_ledger()
    layout = Layout(output_dir)  # asked for only when a phase writes
    ctx = RunContext(
        plan_path=plan_path,
        ledger=ledger,
        run_id=ledger_run_id(ti.dag_id, context["run_id"]),
        actor=f"airflow:{ti.dag_id}.{ti.task_id}",
        now=context["dag_run"].run_after,
        keys=key_store,
        layout=layout,
        connectors=AirflowConnectors(layout),
    )
    task = {"task": ti.task_id, "map_index": ti.map_index}
    try:
        yield ctx
    except Exception as exc:
        retryable = exc.retryable if isinstance(exc, RetirementError) else True
        if not retryable or ti.try_number > ti.max_tries:  # no retry follows: the run failed
            run_failed(ctx, task, exc)
        if retryable:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    else:
        run_recovered(ctx, task)
    finally:
        ledger.close()


def run_step(plan_path: str, step: str, *args: Any) -> Any:
    """Run phase function ``step`` (``"<module>:<function>"`` of ``retirement.phases``) as
    ``fn(ctx, *args)`` in this task's run context; what it returns goes to XCom."""
    from importlib import import_module

    module, _, name = step.partition(":")
    function = getattr(import_module(f"retirement.phases.{module}"), name)
    with run_context(plan_path) as ctx:
        return function(ctx, *args)


def request_deletion(plan_path: str) -> list[list[str]]:
    """The deletion request: its text (XCom ``body``) and hash (XCom ``request``) for the
    approval task; the datasets to delete, in batches."""
    from retirement.phases.batching import grouped_batches
    from retirement.phases.delete import deletion_request

    with run_context(plan_path) as ctx:
        asked = deletion_request(ctx)
        ti = get_current_context()["ti"]
        ti.xcom_push(key="body", value=asked["body"])
        ti.xcom_push(key="request", value=asked["request"])
        return grouped_batches(asked["groups"], ctx.plan.mapping.max_tasks)


def expire_archives(as_of: str | None = None) -> list[dict[str, Any]]:
    """The retention_expiry task: every plan's archives past their retention end (and
    without a legal hold) crypto-erased, their copies deleted, a certificate each.
    ``as_of`` (a date): a rehearsal, saying what an expiry on that date would do, changing
    nothing."""
    from datetime import date

    from retirement.errors import PlanError
    from retirement.phases.context import Layout
    from retirement.phases.retention_expiry import expire
    from retirement.plan.model import load_plan
    from retirement_airflow.connections import key_store, open_ledger, output_dir
    from retirement_airflow.connectors import AirflowConnectors
    from retirement_airflow.plans import plans_dir

    context = get_current_context()
    today = date.fromisoformat(as_of or context["dag_run"].run_after.isoformat()[:10])
    connectors = AirflowConnectors(Layout(output_dir))
    ledger, done = open_ledger(), []
    try:
        for path in sorted(plans_dir().glob("*.yaml")):
            try:
                plan = load_plan(path)
            except PlanError:
                continue  # its own DAG's plan_check says what is wrong

            def destination_for(name: str, plan: Plan = plan) -> Destination:
                return connectors.destination(name, plan.destinations[name])

            results = expire(
                plan,
                ledger=ledger,
                keys=key_store(),
                today=today,
                destination_for=destination_for,
                output_dir=output_dir(),
                actor="airflow:retention_expiry.expire_archives",
                rehearse=as_of is not None,
            )
            done += [{"plan": plan.name, **result} for result in results]
    finally:
        ledger.close()
    return done
