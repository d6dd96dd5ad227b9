"""The daily ``retention_expiry`` DAG: crypto-erase archives whose retention has ended.

Wiring only: for every plan in the plans folder, one library call
(``retirement.phases.retention_expiry.expire``). A legal hold on a disposition blocks it, and the
block is recorded in the ledger each day it applies.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task


@task(retries=2, retry_delay=timedelta(minutes=10))
def expire_archives() -> list[dict]:
    """Every plan: remove expired copies, destroy their key, issue certificates."""
    from datetime import date

    from airflow.sdk import get_current_context

    from retirement.errors import PlanError
    from retirement.phases.retention_expiry import expire
    from retirement.plan.model import load_plan
    from retirement_airflow.connections import key_store, open_ledger, output_dir
    from retirement_airflow.destinations import open_destination
    from retirement_airflow.plans import plans_dir

    context = get_current_context()
    today = date.fromisoformat(context["dag_run"].run_after.isoformat()[:10])
    ledger, done = open_ledger(), []
    try:
        for path in sorted(plans_dir().glob("*.yaml")):
            try:
                plan = load_plan(path)
            except PlanError:
                continue  # its own DAG's plan_check says what is wrong
            for result in expire(
                plan,
                ledger=ledger,
                keys=key_store(),
                today=today,
                destination_for=lambda name, plan=plan: open_destination(plan, name),
                output_dir=output_dir(),
                actor="airflow:retention_expiry.expire_archives",
            ):
                done.append({"plan": plan.name, **result})
    finally:
        ledger.close()
    return done


with DAG(
    dag_id="retention_expiry",
    description="Crypto-erase retained archives whose retention has ended (legal holds block)",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["retirement", "retention"],
    default_args={"owner": "data-platform"},
) as dag:
    expire_archives()
