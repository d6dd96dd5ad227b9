"""One retirement DAG per plan file in ``include/plans/`` (dag_id ``retire__<plan name>``).

Wiring only. At parse time this file reads each plan's header (name, title, scenario) and
nothing else: no connection, variable or database is touched. Every task resolves its
inputs at run time and calls one library function in ``retirement.pipeline``.

A plan that does not validate still gets its DAG: its ``plan_check`` task fails and lists
every problem with file, line and field, so the operator sees it in the Airflow UI.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, get_current_context, task

from retirement.plan_header import PlanHeader, discover

PLANS_DIR = Path(
    os.environ.get("RETIREMENT_PLANS_DIR")
    or Path(__file__).resolve().parent.parent / "include" / "plans"
)

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


def _actor() -> str:
    ti = get_current_context()["ti"]
    return f"airflow:{ti.dag_id}.{ti.task_id}"


def _run_id() -> str:
    from retirement.pipeline import ledger_run_id

    context = get_current_context()
    return ledger_run_id(context["dag"].dag_id, context["run_id"])


@task(retries=0)
def plan_check(plan_path: str) -> list[str]:
    """Validate the plan (every problem at once), open this run in the ledger; the sources."""
    from airflow.sdk.exceptions import AirflowFailException
    from retirement_glue.connections import open_ledger

    from retirement.errors import PlanError
    from retirement.pipeline import check_plan

    ledger = open_ledger()
    try:
        return check_plan(plan_path, ledger=ledger, run_id=_run_id(), actor=_actor())["sources"]
    except PlanError as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        ledger.close()


@task(map_index_template="{{ source_name }}")
def inventory(source_name: str, *, plan_path: str) -> dict:
    """Discover, scan and classify every dataset of one source."""
    from retirement_glue.connections import open_ledger
    from retirement_glue.sources import open_source

    from retirement.pipeline import inventory_source
    from retirement.plan import load_plan

    ledger = open_ledger()
    with open_source(load_plan(plan_path).source(source_name)) as source:
        try:
            return inventory_source(
                plan_path,
                source_name,
                source=source,
                ledger=ledger,
                run_id=_run_id(),
                actor=_actor(),
            )
        finally:
            ledger.close()


@task(retries=0)
def gate_inventory(plan_path: str) -> list[str]:
    """Great-expectations gate: every dataset classified, counted, given a disposition."""
    from airflow.sdk.exceptions import AirflowFailException
    from retirement_glue.connections import open_ledger, output_dir

    from retirement import pipeline
    from retirement.errors import GateFailed

    ledger = open_ledger()
    try:
        now = get_current_context()["dag_run"].run_after.isoformat()
        return pipeline.gate_inventory(
            plan_path,
            ledger=ledger,
            run_id=_run_id(),
            actor=_actor(),
            output_dir=output_dir(),
            now=now,
        )["datasets"]
    except GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        ledger.close()


@task(map_index_template="{{ dataset }}")
def backup(dataset: str, *, plan_path: str) -> dict:
    """Stream one dataset into an age-encrypted, signed backup (CSV -> zstd -> age)."""
    from retirement_glue.connections import key_store, open_ledger, output_dir
    from retirement_glue.sources import open_source

    from retirement.pipeline_backup import backup_dataset
    from retirement.plan import load_plan

    ledger = open_ledger()
    spec = load_plan(plan_path).source(dataset.split(".", 1)[0])
    try:
        with open_source(spec) as source:
            return backup_dataset(
                plan_path,
                dataset,
                source=source,
                keys=key_store(),
                ledger=ledger,
                run_id=_run_id(),
                actor=_actor(),
                vault=output_dir() / "vault",
                now=get_current_context()["dag_run"].run_after.isoformat(),
            )
    finally:
        ledger.close()


@task(retries=0)
def gate_backup(plan_path: str) -> dict:
    """Restore-verify every backup: decrypt, recount, compare row digests with the source."""
    from airflow.sdk.exceptions import AirflowFailException
    from retirement_glue.connections import key_store, open_ledger

    from retirement.errors import GateFailed
    from retirement.pipeline_backup import gate_backup as verify_all

    ledger = open_ledger()
    try:
        return verify_all(
            plan_path, keys=key_store(), ledger=ledger, run_id=_run_id(), actor=_actor()
        )
    except GateFailed as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        ledger.close()


def build_dag(header: PlanHeader) -> DAG:
    with DAG(
        dag_id=header.dag_id,
        description=f"Retire customer data: {header.title or header.name}",
        doc_md=header.doc_md(),
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["retirement", header.scenario or "invalid-plan"],
        default_args=DEFAULT_ARGS,
    ) as dag:
        path = str(header.path)
        checked = plan_check(path)
        scanned = inventory.partial(plan_path=path).expand(source_name=checked)
        datasets = gate_inventory(path)
        scanned >> datasets
        backups = backup.partial(plan_path=path).expand(dataset=datasets)
        backups >> gate_backup(path)
    return dag


for _header in discover(PLANS_DIR):
    globals()[_header.dag_id] = build_dag(_header)
