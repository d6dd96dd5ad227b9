"""`dag.test()` runs of the retirement DAG: the phases that exist, against a real ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retirement.ledger import Ledger
from tests.dags.conftest import ROOT, load_dagbag


def _ledger_conn(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETIREMENT_LEDGER",
        json.dumps({"conn_type": "generic", "extra": {"url": url}}),
    )


def _states(dagrun) -> dict[str, str]:  # noqa: ANN001
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def test_demo_dag_opens_the_run_in_the_ledger(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    _ledger_conn(monkeypatch, url)
    dag = load_dagbag().dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "success", _states(dagrun)
    ledger = Ledger.open(url, create=False)
    (started,) = [e for e in ledger.events() if e.kind == "run_started"]
    assert started.run_id == f"retire__demo:{dagrun.run_id}"
    assert started.actor == "airflow:retire__demo.plan_check"
    from retirement.plan import load_plan

    assert started.payload["plan_sha256"] == load_plan(ROOT / "include/plans/demo.yaml").sha256
    assert ledger.verify().events == 1
    ledger.close()


def test_missing_ledger_connection_fails_with_the_fix(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_RETIREMENT_LEDGER", raising=False)
    dag = load_dagbag().dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "failed"
    assert _states(dagrun) == {"plan_check": "failed"}
    out, err = capfd.readouterr()
    assert "Airflow connection 'retirement_ledger' is not defined" in out + err


def test_wrong_plan_fails_plan_check_and_writes_nothing(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    text = (ROOT / "include/plans/demo.yaml").read_text().replace("years: 30", "years: 0")
    (plans / "demo.yaml").write_text(text)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    _ledger_conn(monkeypatch, url)
    dag = load_dagbag(plans).dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "failed"
    out, err = capfd.readouterr()
    assert "dispositions.accounting_archive.retention.years" in out + err
    ledger = Ledger.open(url)
    assert list(ledger.events()) == []
    ledger.close()
