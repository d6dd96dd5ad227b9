"""The transfer phase against a real ledger and local destinations: receipts, re-runs and a
gate that re-verifies every delivery; retention end dates."""

from __future__ import annotations

from datetime import date

import pytest

from retirement.errors import GateFailed
from retirement.phases.transfer import required_deliveries
from retirement.plan.model import Retention
from retirement.plan.retention import retain_until
from tests.support.demo import DemoRun

RETIRED = date(2026, 11, 23)


def test_deliveries_get_receipts_and_a_rerun_adds_nothing(demo: DemoRun) -> None:
    demo.backup_all()
    demo.gate_backup()
    needs = required_deliveries(demo.ctx())
    assert {"dataset": "crm.invoices", "destination": "archive"} in needs
    assert {"dataset": "crm.customers", "destination": "successor_drop"} in needs
    assert not [n for n in needs if n["dataset"] == "crm.orders"]  # erase: nowhere
    demo.transfer_all()
    events = demo.ledger.verify().events
    demo.transfer_all()
    assert demo.ledger.verify().events == events
    summary = demo.gate_transfer()
    assert summary["failures"] == []
    assert summary["deliveries"] == 3 * len(needs)
    states = {s.dataset: s for s in demo.ledger.dataset_states("r")}
    assert states["crm.invoices"].state == "delivered"
    assert states["crm.orders"].state == "backup_verified"
    (receipt,) = states["crm.invoices"].detail["deliveries"]
    assert receipt["destination"] == "archive"
    assert receipt["method"] == "read back and hashed (sha256)"

    # Re-running backup and its gate after delivery changes no state (found as a bug: the
    # gate set delivered datasets back to backup_verified, the backup forgot its version).
    before = len(list(demo.ledger.events()))
    assert demo.backup("crm.invoices")["new"] is False
    demo.gate_backup()
    added = [e.kind for e in demo.ledger.events()][before:]
    assert "gate_passed" in added
    assert not [k for k in added if k.startswith("dataset_")]  # the verdict and its evidence
    assert {s.dataset: s.state for s in demo.ledger.dataset_states("r")} == {
        d: s.state for d, s in states.items()
    }


def test_gate_fails_on_a_missing_receipt_and_on_an_altered_delivery(demo: DemoRun) -> None:
    demo.backup_all()
    demo.gate_backup()
    with pytest.raises(GateFailed, match=r"crm.invoices -> archive \(backup\): no receipt"):
        demo.gate_transfer()
    demo.transfer_all()
    (cipher,) = (demo.dest / "archive").rglob("*.csv.zst.age")
    data = bytearray(cipher.read_bytes())
    data[10] ^= 1
    cipher.write_bytes(bytes(data))
    with pytest.raises(GateFailed, match="truncated or altered at the destination"):
        demo.gate_transfer()
    assert {s.state for s in demo.ledger.dataset_states("r")} == {"backup_verified"}
    assert [e.kind for e in demo.ledger.events(run_id="r")].count("gate_failed") == 2


@pytest.mark.parametrize(
    ("years", "starts", "expected"),
    [
        (30, "fiscal_year_end", date(2057, 1, 1)),
        (10, "retirement_date", date(2036, 11, 23)),
    ],
)
def test_retention_end_dates(years: int, starts: str, expected: date) -> None:
    rule = Retention(years=years, legal_basis="会计档案管理办法 Art. 14", starts=starts)
    assert retain_until(rule, RETIRED) == expected
    permanent = Retention(permanent=True, legal_basis="档案法")
    assert retain_until(permanent, RETIRED) is None
