"""The recoveries of docs/runbook.md ("Re-run a failed step"), each done exactly as written,
on the demo CRM with local destinations: the run then ends with everything deleted and
nothing lost. Three of them did not work before (issue 14, item 8)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from retirement.errors import DeletionRefused, GateFailed
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.inventory import inventory_source
from tests.support.demo import CRM, DemoRun

RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"


def _everything_after_backup(demo: DemoRun) -> None:
    """gate_backup, transfer, gate_transfer, deletion_request, the approval, delete and
    gate_deletion: what "Clear (with downstream)" re-runs after a backup."""
    demo.gate_backup()
    demo.transfer_all()
    demo.gate_transfer()
    demo.request()
    demo.decide(approved=True, by="alice")
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()


def _row(needle: str) -> str:
    """The runbook's table row for a log line."""
    (row,) = [line for line in RUNBOOK.read_text().splitlines() if needle in line]
    return row


def test_after_the_source_changed_clear_inventory_with_downstream(demo: DemoRun) -> None:
    ledger, db = demo.ledger, demo.db
    assert "clear `inventory` for its source, with downstream" in _row("the source changed")
    demo.approved()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO customers (id, name) VALUES (9001, 'added after the backup')")
    with pytest.raises(DeletionRefused, match="the source changed since the backup"):
        demo.delete("crm.customers")
    assert demo.count("customers") == 31
    inventory_source(demo.ctx(), "crm")  # clear inventory (crm), with downstream
    gate_inventory(demo.ctx())
    for state in ledger.dataset_states("r"):
        demo.backup(state.dataset)
    _everything_after_backup(demo)
    assert demo.count("customers") == 0
    (state,) = [s for s in ledger.dataset_states("r") if s.dataset == "crm.customers"]
    assert state.state == "deleted"
    assert state.detail["backup"]["rows"] == 31  # the added row is in the new version


def test_after_a_damaged_backup_clear_backup_for_it_with_downstream(demo: DemoRun) -> None:
    ledger = demo.ledger
    row = _row("cannot be decrypted")
    assert "clear `backup` for that dataset, with downstream" in row
    demo.approved()
    state = next(s for s in ledger.dataset_states("r") if s.dataset == "crm.customers")
    manifest = Path(state.detail["backup"]["manifest"])
    cipher = next(manifest.parent.glob("*.age"))
    data = bytearray(cipher.read_bytes())
    data[len(data) * 4 // 5] ^= 0xFF
    cipher.write_bytes(bytes(data))
    with pytest.raises(DeletionRefused, match="was altered since gate_backup verified it"):
        demo.delete("crm.customers")
    with pytest.raises(GateFailed, match="crm.customers"):
        demo.gate_backup()
    assert demo.backup("crm.customers")["new"] is True  # a new version, not "its backup stands"
    _everything_after_backup(demo)
    assert demo.count("customers") == 0


def test_after_an_altered_delivered_copy_clear_transfer_with_downstream(demo: DemoRun) -> None:
    assert "clear `transfer` for it, with downstream" in _row("truncated or altered")
    demo.approved()
    copy = next((demo.tmp / "dest" / "successor_drop").rglob("*.age"))
    copy.write_bytes(copy.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(GateFailed, match="truncated or altered at the destination"):
        demo.gate_transfer()
    with pytest.raises(DeletionRefused, match="approval no longer holds"):
        demo.delete("crm.customers")
    demo.transfer_all()  # clear transfer: the altered copy is replaced
    demo.gate_transfer()
    demo.request()
    demo.decide(approved=True, by="alice")
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    assert demo.count("customers") == 0
