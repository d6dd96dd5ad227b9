"""The daily ``retention_expiry`` DAG: crypto-erase archives whose retention has ended.

Wiring only: for every plan in the plans folder, one library call
(``retirement.phases.retention_expiry.expire``, through ``retirement_airflow.task``). A legal
hold on a disposition blocks it, and the block is recorded in the ledger each day it applies.

The DAG is active as soon as Airflow first parses it (``is_paused_upon_creation=False``):
a retention that ends must not wait for someone to unpause it. Trigger it with the param
``as_of`` (a date, e.g. ``2056-01-02``) to rehearse an expiry: the run says what would be
erased or kept on that date and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task


@task(retries=2, retry_delay=timedelta(minutes=10), execution_timeout=timedelta(hours=6))
def expire_archives(as_of: str | None) -> list[dict]:
    """Every plan: remove expired copies, destroy their key, issue certificates."""
    from retirement_airflow.task import expire_archives as expire

    return expire(as_of or None)


with DAG(
    dag_id="retention_expiry",
    description="Crypto-erase retained archives whose retention has ended (legal holds block)",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["retirement", "retention"],
    default_args={"owner": "data-platform"},
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Rehearse: what an expiry on this date would do (nothing changes)",
        )
    },
) as dag:
    expire_archives("{{ params.as_of or '' }}")
