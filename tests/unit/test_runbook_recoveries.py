"""The recoveries of docs/runbook.md ("Re-run a failed step"), each done exactly as written,
on the demo CRM with local destinations: the run then ends with everything deleted and
nothing lost. Three of them did not work before (issue 14, item 8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from retirement.errors import DeletionRefused, GateFailed
from retirement.phases.backup import gate_backup
from retirement.phases.delete import deletion_request, record_decision
from retirement.phases.inventory import gate_inventory, inventory_source
from retirement.sources.sql import SqlSource
from tests.unit.demo_run import NOW, PLAN, _backup
from tests.unit.test_pipeline_delete import CRM, _approved, _count, _delete, _gate_deletion
from tests.unit.test_pipeline_transfer import _dests, _gate, _send_all

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def _everything_after_backup(setup, tmp_path: Path) -> None:  # noqa: ANN001
    """gate_backup, transfer, gate_transfer, deletion_request, the approval, delete and
    gate_deletion: what "Clear (with downstream)" re-runs after a backup."""
    ledger, keys, _, _ = setup
    gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    dests = _dests(tmp_path / "dest")
    _send_all(ledger, dests)
    _gate(ledger, dests, tmp_path)
    deletion_request(PLAN, ledger=ledger, run_id="r", actor="t")
    record_decision(ledger, "r", approved=True, by="alice", at=NOW)
    for dataset in CRM:
        _delete(setup, dataset)
    _gate_deletion(setup, tmp_path)


def _row(needle: str) -> str:
    """The runbook's table row for a log line."""
    (row,) = [line for line in RUNBOOK.read_text().splitlines() if needle in line]
    return row


def test_after_the_source_changed_clear_inventory_with_downstream(setup, tmp_path: Path) -> None:  # noqa: ANN001
    assert "clear `inventory` for its source, with downstream" in _row("the source changed")
    ledger, _, db, _ = setup
    _approved(setup, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO customers (id, name) VALUES (9001, 'added after the backup')")
    with pytest.raises(DeletionRefused, match="the source changed since the backup"):
        _delete(setup, "crm.customers")
    assert _count(db, "customers") == 31
    with SqlSource("crm", f"sqlite:///{db}") as source:  # clear inventory (crm), downstream
        inventory_source(PLAN, "crm", source=source, ledger=ledger, run_id="r", actor="t")
    gate_inventory(PLAN, ledger=ledger, run_id="r", actor="t", output_dir=tmp_path / "out", now=NOW)
    for state in ledger.dataset_states("r"):
        _backup(setup, state["dataset"])
    _everything_after_backup(setup, tmp_path)
    assert _count(db, "customers") == 0
    (state,) = [s for s in ledger.dataset_states("r") if s["dataset"] == "crm.customers"]
    assert state["state"] == "deleted"
    assert state["detail"]["backup"]["rows"] == 31  # the added row is in the new version


def test_after_a_damaged_backup_clear_backup_for_it_with_downstream(setup, tmp_path: Path) -> None:  # noqa: ANN001
    row = _row("cannot be decrypted")
    assert "clear `backup` for that dataset, with downstream" in row
    ledger, keys, db, _ = setup
    _approved(setup, tmp_path)
    state = next(s for s in ledger.dataset_states("r") if s["dataset"] == "crm.customers")
    manifest = Path(state["detail"]["backup"]["manifest"])
    cipher = next(manifest.parent.glob("*.age"))
    data = bytearray(cipher.read_bytes())
    data[len(data) * 4 // 5] ^= 0xFF
    cipher.write_bytes(bytes(data))
    with pytest.raises(DeletionRefused, match="was altered since gate_backup verified it"):
        _delete(setup, "crm.customers")
    with pytest.raises(GateFailed, match="crm.customers"):
        gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    assert _backup(setup, "crm.customers")["new"] is True  # a new version, not "its backup stands"
    _everything_after_backup(setup, tmp_path)
    assert _count(db, "customers") == 0


def test_after_an_altered_delivered_copy_clear_transfer_with_downstream(
    setup, tmp_path: Path
) -> None:  # noqa: ANN001
    assert "clear `transfer` for it, with downstream" in _row("truncated or altered")
    ledger, _, db, _ = setup
    _approved(setup, tmp_path)
    copy = next((tmp_path / "dest" / "successor_drop").rglob("*.age"))
    copy.write_bytes(copy.read_bytes()[:-10] + b"0123456789")
    dests = _dests(tmp_path / "dest")
    with pytest.raises(GateFailed, match="truncated or altered at the destination"):
        _gate(ledger, dests, tmp_path)
    with pytest.raises(DeletionRefused, match="approval no longer holds"):
        _delete(setup, "crm.customers")
    _send_all(ledger, dests)  # clear transfer: the altered copy is replaced
    _gate(ledger, dests, tmp_path)
    deletion_request(PLAN, ledger=ledger, run_id="r", actor="t")
    record_decision(ledger, "r", approved=True, by="alice", at=NOW)
    for dataset in CRM:
        _delete(setup, dataset)
    _gate_deletion(setup, tmp_path)
    assert _count(db, "customers") == 0
