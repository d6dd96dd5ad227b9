"""One retirement DAG per plan file in ``include/plans/`` (dag_id ``retire__<plan name>``).

Wiring only. At parse time this file reads each plan's header (name, title, scenario, the
retries, mapping and approval blocks) with YAML and nothing heavier: no connection,
variable or database, no plan model. Every task runs one function of ``retirement.phases``
in its run's context, built at run time (``retirement_airflow.task``).

The tasks, in the order they run (each DAG's doc lists them the same way, from
``retirement.plan.header.PHASES``): plan_check -> inventory (mapped per source) -> preview
(a run with param ``dry_run`` stops here, every later task skipped) -> gate_inventory ->
backup (mapped batches) -> gate_backup -> deliveries -> transfer (mapped
batches) -> gate_transfer -> notify_customers -> deletion_request -> approve_deletion (and
approve_deletion_2, ... when the plan's approval.required asks for more distinct people) ->
delete (mapped batches) -> gate_deletion -> seal. A failed gate stops everything after it.

Each task may run as long as the plan's ``retries.timeouts`` says for its kind, a whole run
as long as ``retries.timeouts.run``; the plan's ``notify`` block sends mail through Airflow's
SmtpNotifier when a task fails after its retries, when an approval waits and when the run
is sealed.

A plan that does not validate still gets its DAG: its ``plan_check`` task fails and lists
every problem with file, line and field, so the operator sees it in the Airflow UI.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from retirement.plan.header import PlanHeader, discover
from retirement_airflow.notifications import notifiers
from retirement_airflow.plans import plans_dir
from retirement_airflow.task import request_deletion, run_step

PLANS_DIR = plans_dir()
# A mapped task handles a batch of datasets (retirement.phases.batching); the UI names it by
# its first dataset. Read from the task's own arguments, the name is set before the task runs,
# so a task that fails, times out or is killed keeps it (a name made from the function's
# arguments in the context is set only when the function returns or raises).
BATCH = "ti.task.op_kwargs['batch']"
BATCH_NAME = (
    f"{{{{ {BATCH}[0] }}}}{{% if {BATCH} | length > 1 %}} (+{{{{ {BATCH} | length - 1 }}}} more)"
    "{% endif %}"
)


def default_args(header: PlanHeader) -> dict:
    """Retries from the plan's ``retries`` block (defaults: 3, after 20 s, doubling to 10 min);
    a task that fails after them notifies as the plan's ``notify`` block says."""
    return {
        "owner": "data-platform",
        "execution_timeout": timeout(header, "other"),
        "on_failure_callback": notifiers(header, "failure"),
        "retries": header.retries.attempts,
        "retry_delay": timedelta(seconds=header.retries.delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=header.retries.max_delay_seconds),
        **({"pool": header.pool} if header.pool else {}),
    }


def timeout(header: PlanHeader, kind: str) -> timedelta:
    """How long a task of ``kind`` may run (the plan's ``retries.timeouts``)."""
    return timedelta(seconds=header.ops.timeouts[kind])


@task(retries=0)
def plan_check(plan_path: str, params: dict | None = None) -> list[str]:
    """Validate the plan (every problem at once), open this run with it (as a preview when
    the run's param dry_run is true); its sources."""
    dry_run = bool((params or {}).get("dry_run"))
    return run_step(plan_path, "preview:open_preview" if dry_run else "plan_check:source_names")


@task(map_index_template="{{ ti.task.op_kwargs['source_name'] }}")
def inventory(source_name: str, *, plan_path: str) -> dict:
    """Discover, scan and classify every dataset of one source."""
    return run_step(plan_path, "inventory:inventory_source", source_name)


@task.short_circuit(retries=0, ignore_downstream_trigger_rules=True)
def preview(plan_path: str) -> bool:
    """A preview run (dry_run): write the preview report and skip every later task; a real
    run goes on."""
    return run_step(plan_path, "preview:preview_or_go_on")


@task(retries=0)
def gate_inventory(plan_path: str) -> list[list[str]]:
    """Great-expectations gate on the inventory; the plan's rules and keys checked."""
    return run_step(plan_path, "gate_inventory:datasets_in_batches")


@task(map_index_template=BATCH_NAME)
def backup(batch: list[str], *, plan_path: str) -> list[dict]:
    """Stream each dataset into an age-encrypted, signed backup (CSV -> zstd -> age)."""
    return run_step(plan_path, "backup:back_up_batch", batch)


@task(retries=0)
def gate_backup(plan_path: str) -> dict:
    """Restore-verify every backup: decrypt, recount, compare row digests with the source."""
    return run_step(plan_path, "gate_backup:gate_backup")


@task
def deliveries(plan_path: str) -> list[list[str]]:
    """Every "dataset -> destination" the plan requires, batched by destination."""
    return run_step(plan_path, "transfer:delivery_batches")


@task(map_index_template=BATCH_NAME)
def transfer(batch: list[str], *, plan_path: str) -> list[dict]:
    """Deliver each backup (age file, manifest, signature) to its destination and verify it."""
    return run_step(plan_path, "transfer:transfer_batch", batch)


@task(retries=0, trigger_rule="none_failed")
def gate_transfer(plan_path: str) -> dict:
    """Every required delivery has a verified receipt equal to the manifest, checked again."""
    return run_step(plan_path, "gate_transfer:gate_transfer")


@task
def notify_customers(plan_path: str) -> dict:
    """PIPL Art. 22 notices for transfers: encrypted mail-merge CSV; sent where configured."""
    return run_step(plan_path, "notify:notify_customers")


@task(retries=0)
def deletion_request(plan_path: str) -> list[list[str]]:
    """What will be destroyed and its proof, for the approver and the ledger."""
    return request_deletion(plan_path)


@task(retries=0)
def auto_approve_deletion(plan_path: str) -> None:
    """The plan sets approval.auto_approve (the demo): recorded in the ledger as such."""
    run_step(plan_path, "delete:auto_approve")


@task(map_index_template=BATCH_NAME)
def delete(batch: list[str], *, plan_path: str) -> list[dict]:
    """Delete exactly the backed-up data of each dataset, its proof checked again first."""
    return run_step(plan_path, "delete:delete_batch", batch)


@task(retries=0)
def gate_deletion(plan_path: str) -> dict:
    """Nothing of any backup left, no identifier left; then signed certificates."""
    return run_step(plan_path, "gate_deletion:gate_deletion")


@task(retries=0)
def seal(plan_path: str) -> dict:
    """The closure dossier: evidence, signed digests and the ledger's chain head."""
    return run_step(plan_path, "seal:seal_summary")


def _approvals(header: PlanHeader, path: str) -> list:  # operators or a task's output
    if header.auto_approve:
        return [auto_approve_deletion.override(task_id="approve_deletion")(path)]
    from retirement_airflow.approval import DeletionApproval, approval_task_id

    wait = header.ops.approval_timeout
    return [
        DeletionApproval(
            task_id=approval_task_id(step),
            plan_path=path,
            step=step,
            required=header.approvals_required,
            subject=f"Approve permanent deletion ({step} of {header.approvals_required}): "
            f"{header.title or header.name}",
            body="{{ ti.xcom_pull(task_ids='deletion_request', key='body') }}",
            # The plan's approvers; at run time, those who have not approved another step.
            assigned_users=[{"id": a.user, "name": a.name} for a in header.ops.approvers],
            response_timeout=timedelta(seconds=wait) if wait else None,
            notifiers=notifiers(header, "approval"),
            execution_timeout=None,  # the wait is response_timeout's, not an execution
            retries=0,
        )
        for step in range(1, header.approvals_required + 1)
    ]


def build_dag(header: PlanHeader) -> DAG:
    with DAG(
        dag_id=header.dag_id,
        description=f"Retire customer data: {header.title or header.name}",
        doc_md=header.doc_md(),
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timeout(header, "run"),
        tags=["retirement", header.scenario or "invalid-plan"],
        default_args=default_args(header),
        params={
            "dry_run": Param(
                False,
                type="boolean",
                description="Preview only: check the plan, inventory the sources, write the "
                "preview report (what a run would do) and stop. Nothing is backed up, "
                "delivered or deleted; the ledger records the run as a preview.",
            )
        },
    ) as dag:
        path = str(header.path)
        gate = timeout(header, "gate")
        scanned = (
            inventory.override(execution_timeout=timeout(header, "inventory"))
            .partial(plan_path=path)
            .expand(source_name=plan_check(path))
        )
        datasets = gate_inventory.override(execution_timeout=gate)(path)
        scanned >> preview(path) >> datasets
        backups = (
            backup.override(execution_timeout=timeout(header, "backup"))
            .partial(plan_path=path)
            .expand(batch=datasets)
        )
        needed = deliveries(path)
        sent = (
            transfer.override(execution_timeout=timeout(header, "transfer"))
            .partial(plan_path=path)
            .expand(batch=needed)
        )
        request = deletion_request(path)
        approvals = _approvals(header, path)
        deleted = (
            delete.override(execution_timeout=timeout(header, "delete"))
            .partial(plan_path=path)
            .expand(batch=request)
        )
        sealed = seal.override(on_success_callback=notifiers(header, "sealed"))(path)
        backups >> gate_backup.override(execution_timeout=gate)(path) >> needed
        checked = gate_transfer.override(execution_timeout=gate)(path)
        sent >> checked >> notify_customers(path) >> request >> approvals[0]
        for before, after in zip(approvals, approvals[1:], strict=False):
            before >> after
        approvals[-1] >> deleted >> gate_deletion.override(execution_timeout=gate)(path) >> sealed
    return dag


for _header in discover(PLANS_DIR):
    globals()[_header.dag_id] = build_dag(_header)
