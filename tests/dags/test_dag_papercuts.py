"""Operations papercuts: a failed mapped task keeps its dataset's name; retention_expiry is
active when created and rehearses an expiry for a date without changing anything; a plan
whose archive identity was crypto-erased stops at plan_check, once, saying why and what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from retirement.ledger.core import Ledger
from tests.dags.conftest import ROOT, ledger_conn, load_dagbag, task_states


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **changes: object) -> Path:
    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan.update(changes)
    folder = tmp_path / "plans"
    folder.mkdir(exist_ok=True)
    (folder / f"{plan['name']}.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    monkeypatch.setenv("RETIREMENT_PLANS_DIR", str(folder))
    return folder


def test_a_failed_mapped_task_is_named_by_what_it_works_on(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_conn(monkeypatch, f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path / "out")
    monkeypatch.delenv("AIRFLOW_CONN_DEMO_EXPORTS")  # the exports source cannot be opened
    folder = _plan(tmp_path, monkeypatch, name="named", retries={"attempts": 0})
    dagrun = load_dagbag(folder).dags["retire__named"].test()
    assert dagrun.state == "failed"
    inventory = {
        ti.rendered_map_index: ti.state
        for ti in dagrun.get_task_instances()
        if ti.task_id == "inventory"
    }
    assert inventory == {"crm": "success", "exports": "failed"}


def test_retention_expiry_is_active_and_rehearses_a_date_without_changing_anything(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    bag = load_dagbag()
    expiry = bag.dags["retention_expiry"]
    assert expiry.is_paused_upon_creation is False
    assert bag.dags["retire__demo"].test().state == "success"
    archive = tmp_path / "out" / "archive"
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    assert files
    later = f"{datetime.now(UTC).year + 31}-01-02"
    rehearsal = expiry.test(run_conf={"as_of": later})
    assert rehearsal.state == "success", task_states(rehearsal)
    (ti,) = rehearsal.get_task_instances()
    would = ti.xcom_pull(task_ids="expire_archives")
    assert sorted((r["disposition"], r["would"]) for r in would) == [
        ("accounting_archive", "be crypto-erased"),
        ("erase", "be crypto-erased"),
    ]
    assert all(r["rehearsal"] and r["as_of"] == later for r in would)
    assert sorted(p for p in archive.rglob("*") if p.is_file()) == files  # nothing removed
    ledger = Ledger.open(url, create=False)
    assert not [e for e in ledger.events() if e.kind in ("archive_expired", "expiry_blocked")]
    ledger.close()


def test_a_plan_whose_archive_key_was_erased_stops_at_plan_check_once(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from retirement.crypto.keys import KeyStore

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    master = KeyStore.read_master_key(tmp_path / "keys" / "master.key")
    keys = KeyStore(tmp_path / "keys", master)
    keys.archive_key("demo", "accounting_archive")
    keys.destroy("demo", "accounting_archive")  # as the retention expiry does
    capfd.readouterr()
    dagrun = load_dagbag().dags["retire__demo"].test()
    assert dagrun.state == "failed"
    (check,) = [ti for ti in dagrun.get_task_instances() if ti.task_id == "plan_check"]
    assert check.state == "failed"
    assert check.try_number == 1  # never retried
    out, err = capfd.readouterr()
    assert "demo/accounting_archive was crypto-erased" in out + err
    assert "Give the plan a new `name`" in out + err
    ledger = Ledger.open(url, create=False)
    assert not [e for e in ledger.events() if e.kind == "run_started"]  # no run was opened
    ledger.close()
