"""The DAG factory: parses with no I/O beyond the plan files, one DAG per plan, right shape."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from tests.dags.conftest import ROOT, load_dagbag

PLANS = ROOT / "include" / "plans"


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
    expected = {
        "retire__demo",
        "retire__demo_change",
        "retire__demo_transfer_liquidation",
        "retire__template_deregistration",
        "retire__template_change",
        "retire__template_transfer_liquidation",
    }
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
        "seal",
        "transfer",
    ]
    assert dag.get_task("plan_check").downstream_task_ids == {"inventory"}
    assert dag.get_task("inventory").downstream_task_ids == {"gate_inventory"}
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


@pytest.mark.parametrize("plan", ["retire__demo", "retire__template_change"])
def test_the_docs_list_every_task_in_the_order_they_run(no_lookups: None, plan: str) -> None:
    """The DAG's doc (built from the plan header) and dags/retire.py's own docstring name
    every task of the DAG, each before the tasks downstream of it."""
    import retire

    from retirement.plan.header import PHASES

    dag = load_dagbag().dags[plan]
    ids = {t.task_id for t in dag.tasks}
    assert [task for task, _ in PHASES] == _in_text_order(dag.doc_md.split("Phases:", 1)[1], ids)
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
