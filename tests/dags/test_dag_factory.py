"""The DAG factory: parses with no I/O beyond the plan files, one DAG per plan, right shape."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from tests.dags.conftest import ROOT, load_dagbag

PLANS = ROOT / "include" / "plans"
TEMPLATES = ROOT / "include" / "templates"


class ParseTimeAccess(AssertionError):
    pass


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise ParseTimeAccess("connection or variable looked up at DAG parse time")


@pytest.fixture
def no_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any connection or variable look-up raise, as parse-time access must fail the test."""
    from airflow.sdk import BaseHook, Connection, Variable

    monkeypatch.setattr(Connection, "get", classmethod(_refuse))
    monkeypatch.setattr(Variable, "get", classmethod(_refuse))
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(_refuse))
    monkeypatch.setattr(
        "airflow.models.connection.Connection.get_connection_from_secrets", classmethod(_refuse)
    )
    monkeypatch.setattr("airflow.models.variable.Variable.get", classmethod(_refuse))


def test_lookup_patch_really_raises(no_lookups: None) -> None:
    from airflow.sdk import Connection

    with pytest.raises(ParseTimeAccess):
        Connection.get("retirement_ledger")


def test_dagbag_imports_without_errors_or_lookups(no_lookups: None) -> None:
    bag = load_dagbag()
    assert bag.import_errors == {}
    expected = {"retire__demo", "retire__demo_change", "retire__demo_transfer_liquidation"}
    assert set(bag.dag_ids) == expected | {"retention_expiry"}
    assert len(list(PLANS.glob("*.yaml"))) == len(expected)


def test_demo_dag_structure(no_lookups: None) -> None:
    dag = load_dagbag().dags["retire__demo"]
    assert dag is not None
    assert sorted(t.task_id for t in dag.tasks) == [
        "approve_deletion",
        "backup",
        "delete",
        "deletion_request",
        "deliveries",
        "gate_backup",
        "gate_deletion",
        "gate_inventory",
        "gate_transfer",
        "inventory",
        "notify_customers",
        "plan_check",
        "preview",
        "seal",
        "transfer",
    ]
    assert dag.get_task("plan_check").downstream_task_ids == {"inventory"}
    assert dag.get_task("inventory").downstream_task_ids == {"preview"}
    assert dag.get_task("preview").downstream_task_ids == {"gate_inventory"}
    assert dag.params["dry_run"] is False  # a run does the work unless asked to preview
    assert dag.get_task("gate_inventory").downstream_task_ids == {"backup"}
    assert dag.get_task("backup").downstream_task_ids == {"gate_backup"}
    assert dag.schedule is None
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.tags) == {"retirement", "deregistration"}
    assert "Demo Trading Co. deregistration" in dag.doc_md
    assert "plan_check" in dag.doc_md
    assert dag.get_task("plan_check").retries == 0  # a wrong plan does not improve by retrying
    assert dag.get_task("gate_inventory").retries == 0
    assert dag.get_task("gate_backup").retries == 0
    assert dag.get_task("inventory").retries == 3
    args = dag.default_args
    assert args["retries"] >= 1
    assert args["retry_exponential_backoff"] > 1
    assert args["max_retry_delay"] <= timedelta(minutes=30)


def _in_text_order(text: str, task_ids: set[str]) -> list[str]:
    """The task ids named in ``text``, in the order they stand there."""
    named = re.findall(r"\b(" + "|".join(sorted(task_ids, key=len, reverse=True)) + r")\b", text)
    return list(dict.fromkeys(named))


@pytest.mark.parametrize("plan", ["demo", "change", "deregistration"])
def test_the_docs_list_every_task_in_the_order_they_run(
    tmp_path: Path, no_lookups: None, plan: str
) -> None:
    """The DAG's doc (built from the plan header) and dags/retire.py's own docstring name
    every task of the DAG, each before the tasks downstream of it (the deregistration
    template asks for two approvals)."""
    import retire

    from retirement.plan.header import PHASES

    source = PLANS / "demo.yaml" if plan == "demo" else TEMPLATES / f"{plan}.yaml"
    (tmp_path / f"{plan}.yaml").write_text(source.read_text())
    (dag,) = [d for d in load_dagbag(tmp_path).dags.values() if d.dag_id != "retention_expiry"]
    ids = {t.task_id for t in dag.tasks}
    phases = _in_text_order(dag.doc_md.split("Phases:", 1)[1], ids)
    further = r"approve_deletion_\d+"  # the further approvals of approval.required
    assert [task for task, _ in PHASES] == [t for t in phases if not re.fullmatch(further, t)]
    for text in (dag.doc_md.split("Phases:", 1)[1], retire.__doc__):
        order = _in_text_order(text, ids)
        assert set(order) == ids, text
        for task in dag.tasks:
            for later in task.downstream_task_ids:
                assert order.index(task.task_id) < order.index(later), (task.task_id, later)


def test_invalid_plan_still_gets_a_dag(tmp_path: Path, no_lookups: None) -> None:
    (tmp_path / "Broken Plan.yaml").write_text("name: [unclosed\n")
    (tmp_path / "good.yaml").write_text((PLANS / "demo.yaml").read_text())
    bag = load_dagbag(tmp_path)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"retire__broken_plan", "retire__demo", "retention_expiry"}
    broken = bag.dags["retire__broken_plan"]
    assert "cannot be read" in broken.doc_md
    assert "invalid-plan" in broken.tags


def test_the_plans_retries_block_sets_the_tasks_retries(tmp_path: Path, no_lookups: None) -> None:
    import yaml

    plan = yaml.safe_load((PLANS / "demo.yaml").read_text())
    plan["retries"] = {"attempts": 1, "delay_seconds": 2, "max_delay_seconds": 4}
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump({**plan, "name": "quick"}))
    wrong = {**plan, "name": "wrong", "retries": {"attempts": -1}}
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    bag = load_dagbag(tmp_path)
    quick = bag.dags["retire__quick"]
    assert quick.get_task("transfer").retries == 1
    assert quick.get_task("transfer").retry_delay == timedelta(seconds=2)
    assert quick.get_task("gate_transfer").retries == 0  # gates never retry
    assert bag.dags["retire__wrong"].get_task("transfer").retries == 3  # the defaults

    from retirement.errors import PlanError
    from retirement.plan.model import load_plan

    with pytest.raises(PlanError, match="retries"):
        load_plan(tmp_path / "wrong.yaml")


def test_dag_file_has_no_heavy_imports() -> None:
    text = (ROOT / "dags" / "retire.py").read_text()
    top = text.split("\ndef ", 1)[0].split("\n@task", 1)[0]
    for heavy in ("great_expectations", "pandas", "boto3", "paramiko", "psycopg", "sqlalchemy"):
        assert heavy not in top, heavy


def test_named_approvers_steps_timeouts_and_notifiers_reach_the_dag(
    tmp_path: Path, no_lookups: None
) -> None:
    import yaml

    plan = yaml.safe_load((PLANS / "demo.yaml").read_text())
    plan["approval"] = {
        "approvers": [
            {"name": "Alice", "role": "DPO", "user": "alice"},
            {"name": "Bob", "role": "legal", "user": "bob"},
        ],
        "required": 2,
        "timeout": "2d",
    }
    plan["retries"] = {"timeouts": {"backup": "90m", "run": "5d"}}
    plan["notify"] = {"connection": "smtp_ops", "to": ["ops@example.com"]}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump({**plan, "name": "two"}))
    dag = load_dagbag(tmp_path).dags["retire__two"]
    first, second = dag.get_task("approve_deletion"), dag.get_task("approve_deletion_2")
    assert second.upstream_task_ids == {"approve_deletion"}
    assert dag.get_task("delete").upstream_task_ids == {"approve_deletion_2", "deletion_request"}
    assert [u["id"] for u in first.assigned_users] == ["alice", "bob"]
    assert first.response_timeout == timedelta(days=2)
    assert (first.step, second.step, second.required) == (1, 2, 2)
    assert [n.smtp_conn_id for n in first.notifiers] == ["smtp_ops"]
    assert dag.get_task("backup").execution_timeout == timedelta(minutes=90)
    assert dag.get_task("delete").execution_timeout == timedelta(hours=6)
    assert dag.get_task("plan_check").execution_timeout == timedelta(hours=1)
    assert dag.dagrun_timeout == timedelta(days=5)
    failure = dag.get_task("transfer").on_failure_callback
    assert [n.smtp_conn_id for n in failure] == ["smtp_ops"]
    assert [n.smtp_conn_id for n in dag.get_task("seal").on_success_callback] == ["smtp_ops"]
    demo = load_dagbag().dags["retire__demo"]  # no notify block: no notifiers
    assert not demo.get_task("transfer").on_failure_callback


def test_mapped_tasks_are_named_before_they_run(no_lookups: None) -> None:
    """The names come from the task's own arguments (set before the task runs, kept if it
    fails or is killed), not from the function's arguments merged into the context later."""
    from types import SimpleNamespace

    dag = load_dagbag().dags["retire__demo"]
    env = dag.get_template_env()  # StrictUndefined: a name from the context would raise
    kwargs = {"batch": ["crm.customers", "crm.orders", "crm.invoices"], "source_name": "crm"}
    early = {"ti": SimpleNamespace(task=SimpleNamespace(op_kwargs=kwargs))}
    for task_id, name in [
        ("inventory", "crm"),
        ("backup", "crm.customers (+2 more)"),
        ("transfer", "crm.customers (+2 more)"),
        ("delete", "crm.customers (+2 more)"),
    ]:
        template = dag.get_task(task_id).map_index_template
        assert env.from_string(template).render(early) == name, task_id
    kwargs["batch"] = ["exports.a.csv"]
    assert env.from_string(dag.get_task("backup").map_index_template).render(early) == (
        "exports.a.csv"
    )


def test_templates_validate_and_are_not_loaded_as_dags() -> None:
    from retirement.plan.model import load_plan
    from retirement_airflow.plans import plans_dir

    templates = sorted(TEMPLATES.glob("*.yaml"))
    assert [t.stem for t in templates] == ["change", "deregistration", "transfer_liquidation"]
    for template in templates:
        assert load_plan(template).scenario == template.stem
    assert not {p.name for p in plans_dir().glob("*.yaml")} & {t.name for t in templates}
