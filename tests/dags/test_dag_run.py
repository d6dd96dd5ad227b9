"""`dag.test()` runs of the retirement DAG: the phases that exist, against a real ledger."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from retirement.ledger.core import Ledger
from tests.dags.conftest import ROOT, ledger_conn, load_dagbag, task_states


def sqlite_values(path: Path, query: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(query)]


def test_demo_dag_inventories_and_gates(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    id_cards = sqlite_values(demo_sources / "crm.sqlite", "SELECT id_card FROM customers")
    assert len(id_cards) == 60
    dag = load_dagbag().dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "success", task_states(dagrun)
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__demo:{dagrun.run_id}"
    (started,) = [e for e in ledger.events() if e.kind == "run_started"]
    assert started.run_id == run_id
    assert started.actor == "airflow:retire__demo.plan_check"
    from retirement.plan.model import load_plan

    assert started.payload["plan_sha256"] == load_plan(ROOT / "include/plans/demo.yaml").sha256
    states = {d.dataset: d for d in ledger.dataset_states(run_id)}
    assert states["crm.customers"].data_class == "sensitive"
    assert states["crm.customers"].disposition == "hand_over"
    assert states["crm.invoices"].disposition == "accounting_archive"
    assert states["crm.marketing_events"].disposition == "erase"
    assert states["crm.customers"].rows == 60
    erased = {d for d, st in states.items() if st.disposition == "erase"}
    assert {d.state for d in states.values()} == {"deleted"}
    kinds = [e.kind for e in ledger.events(run_id=run_id)]
    assert kinds.count("gate_passed") == 4  # inventory, backup, transfer and deletion
    assert kinds.index("deletion_approved") < kinds.index("dataset_deleting")
    (approval,) = [e for e in ledger.events(run_id=run_id) if e.kind == "deletion_approved"]
    assert approval.payload["auto"] is True
    gate = max(i for i, k in enumerate(kinds) if k == "gate_passed")
    per_dataset = ["artifact_certificate", "certificate_issued", "dataset_deleted"]
    assert kinds[gate + 1 :] == per_dataset * len(states) + ["dossier_sealed", "run_sealed"]
    assert [k for k in kinds if k.startswith("run_")] == [
        "run_started",
        "run_awaiting_approval",
        "run_deleting",
        "run_sealed",
    ]
    from retirement.crypto.keys import load_public_key
    from retirement.evidence.certificate import verify_certificate

    public = load_public_key((tmp_path / "keys" / "signing.pub.pem").read_bytes())
    for artifact in ledger.artifacts(run_id, kind="certificate"):
        cert = verify_certificate(Path(artifact["location"]), public, ledger)
        assert cert["approval"]["auto"] is True
        # the real times of the ledger's events, not the run's trigger time; the task that
        # deleted, not the gate
        times = [cert["approval"]["approved_at"], cert["performed_at"], cert["issued_at"]]
        approved_at, performed_at, issued_at = (datetime.fromisoformat(t) for t in times)
        assert approved_at < performed_at < issued_at, times
        assert cert["performed_by"]["task"] == "airflow:retire__demo.delete"
        assert cert["verification"]["verified_by"]["task"] == "airflow:retire__demo.gate_deletion"
    assert sqlite_values(demo_sources / "crm.sqlite", "SELECT count(*) FROM customers") == [0]
    from retirement.evidence.audit import audit

    (dossier,) = (tmp_path / "out" / "dossier").iterdir()
    assert audit(dossier, public) == []
    (notices,) = ledger.artifacts(run_id, kind="notices")
    assert json.loads(notices["detail"])["notices"] == 60  # one per customer e-mail
    assert not list((demo_sources / "exports").rglob("*.*"))
    receipts = ledger.artifacts(run_id, kind="receipt")
    assert len(receipts) == 3 * (len(states) - len(erased))  # age file, manifest, signature
    invoices = [r for r in receipts if r["dataset"] == "crm.invoices"]
    assert {
        Path(r["location"].removeprefix("file://")).parent.parent.parent.name for r in invoices
    } == {"archive"}
    for r in receipts:
        local = Path(r["location"].removeprefix("file://"))
        assert hashlib.sha256(local.read_bytes()).hexdigest() == r["sha256"]
    assert "artifact_gate_result" in kinds
    assert kinds.count("artifact_backup") == len(states)
    customers = states["crm.customers"].detail
    assert customers["verify"]["rows"] == 60
    assert customers["deletion"]["result"]["deleted"] == 60
    assert Path(customers["backup"]["manifest"]).exists()
    report = next((tmp_path / "out" / "inventory").glob("*/inventory.html")).read_text()
    assert '<h3>customers <span class="sensitive">sensitive</span></h3>' in report
    assert not any(value in report for value in id_cards)  # no customer values in reports
    ledger.verify()
    ledger.close()


def test_missing_ledger_connection_fails_with_the_fix(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_RETIREMENT_LEDGER", raising=False)
    dag = load_dagbag().dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "failed"
    states = task_states(dagrun)
    assert states["plan_check"] == "failed"
    assert set(states.values()) == {"failed", "upstream_failed"}
    assert {t for t, st in states.items() if st == "upstream_failed"} == {
        "inventory",
        "preview",
        "gate_inventory",
        "backup",
        "gate_backup",
        "deliveries",
        "transfer",
        "gate_transfer",
        "notify_customers",
        "deletion_request",
        "approve_deletion",
        "delete",
        "gate_deletion",
        "seal",
    }
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
    ledger_conn(monkeypatch, url)
    dag = load_dagbag(plans).dags["retire__demo"]
    dagrun = dag.test()
    assert dagrun.state == "failed"
    out, err = capfd.readouterr()
    assert "dispositions.accounting_archive.retention.years" in out + err
    ledger = Ledger.open(url)
    assert list(ledger.events()) == []
    ledger.close()


def test_a_failed_gate_marks_the_run_failed_in_the_ledger(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gate_inventory refuses a rule naming a missing table: not retried, the run is failed
    in the ledger with the task and the reason, and nothing after the gate ran."""
    plans = tmp_path / "plans"
    plans.mkdir()
    text = (ROOT / "include/plans/demo.yaml").read_text()
    text = text.replace("  - dataset: crm.invoices\n", "  - dataset: crm.invoice\n", 1)
    (plans / "demo.yaml").write_text(text)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    dagrun = load_dagbag(plans).dags["retire__demo"].test()
    assert dagrun.state == "failed"
    assert task_states(dagrun)["gate_inventory"] == "failed"
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__demo:{dagrun.run_id}"
    assert ledger.run_state(run_id) == "failed"
    (failed,) = ledger.events_of(run_id, ("run_failed",))
    assert failed.payload["task"] == "gate_inventory"
    assert failed.payload["was"] == "running"
    assert "crm.invoice is no dataset of the inventory" in failed.payload["error"]
    assert not ledger.events_of(run_id, ("dataset_backed_up",))
    ledger.close()


def test_retention_expiry_dag_erases_archives_when_their_time_is_up(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    bag = load_dagbag()
    assert bag.dags["retire__demo"].test().state == "success"
    archive = tmp_path / "out" / "archive"
    assert [p for p in archive.rglob("*") if p.is_file()]

    expiry = bag.dags["retention_expiry"]
    soon = expiry.test(run_after=datetime.now(UTC))
    assert soon.state == "success", task_states(soon)
    ledger = Ledger.open(url, create=False)
    assert not [e for e in ledger.events() if e.kind == "archive_expired"]

    later = expiry.test(run_after=datetime(datetime.now(UTC).year + 31, 1, 2, tzinfo=UTC))
    assert later.state == "success", task_states(later)
    expired = [e.payload["disposition"] for e in ledger.events() if e.kind == "archive_expired"]
    assert sorted(expired) == ["accounting_archive", "erase"]
    assert not [p for p in archive.rglob("*") if p.is_file()]
    ledger.verify()
    ledger.close()


@pytest.mark.parametrize("plan", ["demo_change", "demo_transfer_liquidation"])
def test_the_other_scenarios_run_end_to_end(
    plan: str,
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    dagrun = load_dagbag().dags[f"retire__{plan}"].test()
    assert dagrun.state == "success", task_states(dagrun)
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__{plan}:{dagrun.run_id}"
    (started,) = [e for e in ledger.events() if e.kind == "run_started"]
    assert started.payload["scenario"] == plan.removeprefix("demo_")
    states = ledger.dataset_states(run_id)
    assert {s.state for s in states} == {"deleted"}
    assert len(ledger.artifacts(run_id, kind="certificate")) == len(states)
    ledger.close()


def test_a_plan_with_more_datasets_than_mapped_tasks_runs_them_in_batches(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan.update(name="batched", mapping={"max_tasks": 3})
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "batched.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    monkeypatch.setenv("RETIREMENT_PLANS_DIR", str(plans))
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    dagrun = load_dagbag().dags["retire__batched"].test()
    assert dagrun.state == "success", task_states(dagrun)
    tis = dagrun.get_task_instances()
    for step in ("backup", "transfer", "delete"):
        mapped = [ti for ti in tis if ti.task_id == step]
        assert len(mapped) == 3, step  # 11 datasets (21 deliveries) in 3 tasks each
        assert all(ti.state == "success" for ti in mapped)
    names = sorted(ti.rendered_map_index for ti in tis if ti.task_id == "backup")
    assert names[0] == "crm.bank_accounts (+3 more)", names
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__batched:{dagrun.run_id}"
    states = ledger.dataset_states(run_id)
    assert len(states) == 11
    assert {s.state for s in states} == {"deleted"}
    assert len(ledger.artifacts(run_id, kind="receipt")) == 21
    ledger.close()
