"""One retirement DAG per plan file in ``include/plans/`` (dag_id ``retire__<plan name>``).

Wiring only. At parse time this file reads each plan's header (name, title, scenario) and
nothing else: no connection, variable or database is touched. Every task resolves its
inputs at run time and calls one library function in ``retirement.phases.inventory``.

A plan that does not validate still gets its DAG: its ``plan_check`` task fails and lists
every problem with file, line and field, so the operator sees it in the Airflow UI.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from retirement.plan.header import PlanHeader, discover
from retirement_airflow.plans import plans_dir

PLANS_DIR = plans_dir()


def default_args(header: PlanHeader) -> dict:
    """Retries from the plan's ``retries`` block (defaults: 3, after 20 s, doubling to 10 min)."""
    return {
        "owner": "data-platform",
        "retries": header.retries.attempts,
        "retry_delay": timedelta(seconds=header.retries.delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=header.retries.max_delay_seconds),
        **({"pool": header.pool} if header.pool else {}),
    }


@task(retries=0)
def plan_check(plan_path: str) -> list[str]:
    """Validate the plan (every problem at once), open this run in the ledger; the sources."""
    from retirement.phases.inventory import check_plan
    from retirement_airflow.task import phase

    with phase() as p:
        return check_plan(plan_path, ledger=p.ledger, run_id=p.run_id, actor=p.actor)["sources"]


@task(map_index_template="{{ source_name }}")
def inventory(source_name: str, *, plan_path: str) -> dict:
    """Discover, scan and classify every dataset of one source."""
    from retirement.phases.inventory import inventory_source
    from retirement_airflow.sources import open_source
    from retirement_airflow.task import phase

    with phase() as p, open_source(p.plan(plan_path).source(source_name)) as source:
        return inventory_source(
            plan_path, source_name, source=source, ledger=p.ledger, run_id=p.run_id, actor=p.actor
        )


# A mapped task handles a batch of datasets: one each for small plans, contiguous batches
# beyond the plan's mapping.max_tasks (retirement.phases.batching). The UI names it by its first.
BATCH_NAME = "{{ batch[0] }}{% if batch | length > 1 %} (+{{ batch | length - 1 }} more){% endif %}"


def _batches(plan, items: list) -> list[list]:  # noqa: ANN001 (the run's Plan)
    from retirement.phases.batching import batches

    return batches(items, plan.mapping.max_tasks)


@task(retries=0)
def gate_inventory(plan_path: str) -> list[list[str]]:
    """Great-expectations gate: every dataset classified, counted, given a disposition."""
    from retirement.phases import inventory as pipeline
    from retirement_airflow.connections import output_dir
    from retirement_airflow.task import phase

    with phase() as p:
        datasets = pipeline.gate_inventory(
            plan_path,
            ledger=p.ledger,
            run_id=p.run_id,
            actor=p.actor,
            output_dir=output_dir(),
            now=p.now,
        )["datasets"]
        return _batches(p.plan(plan_path), datasets)


def _on_datasets(plan_path: str, batch: list[str], work, per_task=None, **extra) -> list[dict]:  # noqa: ANN001
    """Call ``work(plan_path, dataset, source=…, keys=…, ledger=…, run_id=…, actor=…, now=…)``
    for each dataset of the batch, each source opened once, in this task's ledger phase;
    ``per_task(phase)`` gives more keyword arguments, made once per task."""
    import logging
    from itertools import groupby

    from retirement.model.ids import DatasetId
    from retirement_airflow.connections import key_store
    from retirement_airflow.sources import open_source
    from retirement_airflow.task import phase

    keys = key_store()
    done: list[dict] = []
    with phase() as p, p.ledger.batch():  # one ledger transaction per few hundred writes
        plan = p.plan(plan_path)
        if per_task is not None:
            extra = {**extra, **per_task(p)}
        for name, group in groupby(batch, key=lambda d: DatasetId.parse(d).source):
            with open_source(plan.source(name)) as source:
                for dataset in group:
                    if len(batch) > 1:
                        logging.getLogger(__name__).info(
                            "dataset %d of %d: %s", len(done) + 1, len(batch), dataset
                        )
                    done.append(
                        work(
                            plan_path,
                            dataset,
                            source=source,
                            keys=keys,
                            ledger=p.ledger,
                            run_id=p.run_id,
                            actor=p.actor,
                            now=p.now,
                            **extra,
                        )
                    )
    return done


@task(map_index_template=BATCH_NAME)
def backup(batch: list[str], *, plan_path: str) -> list[dict]:
    """Stream each dataset into an age-encrypted, signed backup (CSV -> zstd -> age)."""
    from retirement.phases.backup import backup_dataset
    from retirement_airflow.connections import output_dir

    return _on_datasets(plan_path, batch, backup_dataset, vault=output_dir() / "vault")


@task(retries=0)
def gate_backup(plan_path: str) -> dict:
    """Restore-verify every backup: decrypt, recount, compare row digests with the source."""
    from retirement.phases.backup import gate_backup as verify_all
    from retirement_airflow.connections import key_store, output_dir
    from retirement_airflow.task import phase

    with phase() as p:
        return verify_all(
            plan_path,
            keys=key_store(),
            ledger=p.ledger,
            run_id=p.run_id,
            actor=p.actor,
            output_dir=output_dir(),
        )


@task
def deliveries(plan_path: str) -> list[list[str]]:
    """Every "dataset -> destination" the plan requires, from the verified backups, batched
    by destination."""
    from retirement.phases.transfer import required_deliveries
    from retirement_airflow.task import phase

    with phase() as p:
        needed = required_deliveries(plan_path, p.ledger, p.run_id)
        plan = p.plan(plan_path)
    ordered = sorted(needed, key=lambda d: d["destination"])  # a batch opens few destinations
    return _batches(plan, [f"{d['dataset']} -> {d['destination']}" for d in ordered])


@task(map_index_template=BATCH_NAME)
def transfer(batch: list[str], *, plan_path: str) -> list[dict]:
    """Deliver each backup (age file, manifest, signature) to its destination and verify it;
    ``batch`` holds "dataset -> destination" items."""
    from datetime import date
    from itertools import groupby

    from retirement.phases.transfer import transfer_dataset
    from retirement_airflow.destinations import open_destination
    from retirement_airflow.task import phase

    pairs = [item.rsplit(" -> ", 1) for item in batch]
    done = []
    with phase() as p:
        for destination, group in groupby(pairs, key=lambda pair: pair[1]):
            with open_destination(p.plan(plan_path), destination) as dest:
                for dataset, _ in group:
                    done.append(
                        transfer_dataset(
                            plan_path,
                            dataset,
                            destination,
                            dest=dest,
                            ledger=p.ledger,
                            run_id=p.run_id,
                            actor=p.actor,
                            retired_on=date.fromisoformat(p.now[:10]),
                        )
                    )
    return done


@task(retries=0, trigger_rule="none_failed")
def gate_transfer(plan_path: str) -> dict:
    """Every required delivery has a verified receipt equal to the manifest, checked again."""
    from datetime import date

    from retirement.phases.transfer import gate_transfer as verify_all
    from retirement_airflow.connections import output_dir
    from retirement_airflow.destinations import open_destination
    from retirement_airflow.task import phase

    with phase() as p:
        plan = p.plan(plan_path)
        return verify_all(
            plan_path,
            destination_for=lambda name: open_destination(plan, name),
            ledger=p.ledger,
            run_id=p.run_id,
            actor=p.actor,
            retired_on=date.fromisoformat(p.now[:10]),
            output_dir=output_dir(),
        )


@task
def notify_customers(plan_path: str) -> dict:
    """PIPL Art. 22 notices for transfers: encrypted mail-merge CSV; sent where configured."""
    from retirement.evidence.notices import notify_customers as notify
    from retirement_airflow.connections import connection_info, key_store, output_dir
    from retirement_airflow.sources import open_source
    from retirement_airflow.task import phase

    with phase() as p:
        plan = p.plan(plan_path)
        smtp = None
        if plan.notices is not None and plan.notices.smtp_connection:
            smtp = connection_info(plan.notices.smtp_connection, purpose="customer notices (smtp)")
        return notify(
            plan,
            ledger=p.ledger,
            run_id=p.run_id,
            actor=p.actor,
            keys=key_store(),
            source_for=lambda name: open_source(plan.source(name)),
            smtp=smtp,
            output_dir=output_dir(),
            date=p.now[:10],
        )


@task(retries=0)
def deletion_request(plan_path: str) -> list[list[str]]:
    """What will be destroyed and the proof, written for the approver (XCom key ``body``)
    and the ledger; returns the datasets to delete."""
    from airflow.sdk import get_current_context

    from retirement.phases.delete import deletion_request as request
    from retirement_airflow.task import phase

    with phase() as p:
        asked = request(plan_path, ledger=p.ledger, run_id=p.run_id, actor=p.actor)
        plan = p.plan(plan_path)
    ti = get_current_context()["ti"]
    ti.xcom_push(key="body", value=asked["body"])
    ti.xcom_push(key="request", value=asked["request"])
    return _batches(plan, asked["datasets"])


@task(retries=0)
def auto_approve_deletion() -> None:
    """The plan sets approval.auto_approve (the demo): recorded in the ledger as such."""
    from retirement.phases.delete import record_decision
    from retirement_airflow.task import phase

    with phase() as p:
        record_decision(
            p.ledger,
            p.run_id,
            approved=True,
            by="auto-approval (plan approval.auto_approve)",
            at=p.now,
            auto=True,
        )


@task(map_index_template=BATCH_NAME)
def delete(batch: list[str], *, plan_path: str) -> list[dict]:
    """Delete exactly the backed-up data of each dataset: its proof read from the chain and
    its backup and delivered copies checked again first; refused without; resumable."""
    from retirement.deletion.proof import ProofBook
    from retirement.phases.delete import delete_dataset
    from retirement_airflow.destinations import open_destination

    opened: dict = {}

    def per_task(p) -> dict:  # noqa: ANN001
        plan = p.plan(plan_path)

        def destination_for(name: str):  # noqa: ANN202 (opened once per task)
            if name not in opened:
                opened[name] = open_destination(plan, name)
            return opened[name]

        return {"book": ProofBook(p.ledger, p.run_id), "destination_for": destination_for}

    try:
        return _on_datasets(plan_path, batch, delete_dataset, per_task)
    finally:
        for dest in opened.values():
            dest.close()


@task(retries=0)
def gate_deletion(plan_path: str) -> dict:
    """Nothing of the scope left, no identifier left; then signed certificates."""
    from retirement.phases.delete import gate_deletion as verify_all
    from retirement_airflow.connections import key_store, output_dir
    from retirement_airflow.sources import open_source
    from retirement_airflow.task import phase

    with phase() as p:
        plan = p.plan(plan_path)
        return verify_all(
            plan_path,
            open_source=lambda name: open_source(plan.source(name)),
            keys=key_store(),
            ledger=p.ledger,
            run_id=p.run_id,
            actor=p.actor,
            output_dir=output_dir(),
            now=p.now,
        )


@task(retries=0)
def seal(plan_path: str) -> str:
    """The closure dossier: evidence, signed digests and the ledger's chain head."""
    from pathlib import Path

    from retirement.evidence.dossier import build_dossier
    from retirement_airflow.connections import key_store, output_dir
    from retirement_airflow.task import phase

    with phase() as p:
        index = build_dossier(
            p.plan(plan_path),
            plan_path=Path(plan_path),
            ledger=p.ledger,
            run_id=p.run_id,
            keys=key_store(),
            output_dir=output_dir(),
            generated=p.now,
        )
    return str(index)


def _approval(header: PlanHeader):  # noqa: ANN202 (an operator or a task's output)
    if header.auto_approve:
        return auto_approve_deletion.override(task_id="approve_deletion")()
    from retirement_airflow.approval import DeletionApproval

    return DeletionApproval(
        task_id="approve_deletion",
        subject=f"Approve permanent deletion: {header.title or header.name}",
        body="{{ ti.xcom_pull(task_ids='deletion_request', key='body') }}",
        retries=0,
    )


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
        default_args=default_args(header),
    ) as dag:
        path = str(header.path)
        checked = plan_check(path)
        scanned = inventory.partial(plan_path=path).expand(source_name=checked)
        datasets = gate_inventory(path)
        scanned >> datasets
        backups = backup.partial(plan_path=path).expand(batch=datasets)
        needed = deliveries(path)
        backups >> gate_backup(path) >> needed
        sent = transfer.partial(plan_path=path).expand(batch=needed)
        request = deletion_request(path)
        sent >> gate_transfer(path) >> notify_customers(path) >> request
        approved = _approval(header)
        request >> approved
        deleted = delete.partial(plan_path=path).expand(batch=request)
        approved >> deleted >> gate_deletion(path) >> seal(path)
    return dag


for _header in discover(PLANS_DIR):
    globals()[_header.dag_id] = build_dag(_header)
