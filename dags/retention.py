"""The daily ``retention_expiry`` DAG: crypto-erase archives whose retention has ended.

Wiring only: for every plan in the plans folder, one library call
(``retirement.phases.retention_expiry.expire``, through ``retirement_airflow.task``). A legal
hold on a disposition blocks it, and the
block is recorded in the ledger each day it applies.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task


@task(retries=2, retry_delay=timedelta(minutes=10))
def expire_archives() -> list[dict]:
    """Every plan: remove expired copies, destroy their key, issue certificates."""
    from retirement_airflow.task import expire_archives as expire

    return expire()


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
