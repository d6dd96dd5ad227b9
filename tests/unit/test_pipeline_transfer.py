"""The transfer phase against a real ledger and local destinations: receipts, re-runs and a
gate that re-verifies every delivery; retention end dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from retirement.destinations.local import LocalDestination
from retirement.errors import GateFailed
from retirement.phases.backup import gate_backup
from retirement.phases.transfer import gate_transfer, required_deliveries, transfer_dataset
from retirement.plan.model import Retention
from retirement.plan.retention import retain_until
from tests.unit.demo_run import PLAN, _backup

RETIRED = date(2026, 11, 23)


def _dests(root: Path) -> dict[str, LocalDestination]:
    return {n: LocalDestination(n, root / n) for n in ("archive", "successor_drop")}


def _backed_up(setup) -> tuple:  # noqa: ANN001
    ledger, keys, _, _ = setup
    for dataset in ("crm.customers", "crm.invoices", "crm.orders"):
        _backup(setup, dataset)
    states = {s["dataset"] for s in ledger.dataset_states("r")}
    for other in states - {"crm.customers", "crm.invoices", "crm.orders"}:
        _backup(setup, other)
    gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    return ledger


def _send_all(ledger, dests) -> list[dict]:  # noqa: ANN001
    done = []
    for need in required_deliveries(PLAN, ledger, "r"):
        done.append(
            transfer_dataset(
                PLAN,
                need["dataset"],
                need["destination"],
                dest=dests[need["destination"]],
                ledger=ledger,
                run_id="r",
                actor="t",
                retired_on=RETIRED,
            )
        )
    return done


def _gate(ledger, dests, tmp_path: Path) -> dict:  # noqa: ANN001
    return gate_transfer(
        PLAN,
        destination_for=dests.__getitem__,
        ledger=ledger,
        run_id="r",
        actor="t",
        retired_on=RETIRED,
        output_dir=tmp_path / "out",
    )


def test_deliveries_get_receipts_and_a_rerun_adds_nothing(setup, tmp_path: Path) -> None:  # noqa: ANN001
    ledger = _backed_up(setup)
    dests = _dests(tmp_path / "dest")
    needs = required_deliveries(PLAN, ledger, "r")
    assert {"dataset": "crm.invoices", "destination": "archive"} in needs
    assert {"dataset": "crm.customers", "destination": "successor_drop"} in needs
    assert not [n for n in needs if n["dataset"] == "crm.orders"]  # erase: nowhere
    _send_all(ledger, dests)
    events = ledger.verify().events
    _send_all(ledger, dests)
    assert ledger.verify().events == events
    summary = _gate(ledger, dests, tmp_path)
    assert summary["failures"] == []
    assert summary["deliveries"] == 3 * len(needs)
    states = {s["dataset"]: s for s in ledger.dataset_states("r")}
    assert states["crm.invoices"]["state"] == "delivered"
    assert states["crm.orders"]["state"] == "backup_verified"
    (receipt,) = states["crm.invoices"]["detail"]["deliveries"]
    assert receipt["destination"] == "archive"
    assert receipt["method"] == "read back and hashed (sha256)"

    # Re-running backup and its gate after delivery changes no state (found as a bug: the
    # gate set delivered datasets back to backup_verified, the backup forgot its version).
    _, keys, _, _ = setup
    events = ledger.verify().events
    assert _backup(setup, "crm.invoices")["new"] is False
    gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    assert ledger.verify().events == events + 1  # the gate's verdict
    assert {s["dataset"]: s["state"] for s in ledger.dataset_states("r")} == {
        d: s["state"] for d, s in states.items()
    }


def test_gate_fails_on_a_missing_receipt_and_on_an_altered_delivery(
    setup,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    ledger = _backed_up(setup)
    dests = _dests(tmp_path / "dest")
    with pytest.raises(GateFailed, match=r"crm.invoices -> archive \(backup\): no receipt"):
        _gate(ledger, dests, tmp_path)
    _send_all(ledger, dests)
    (cipher,) = (tmp_path / "dest" / "archive").rglob("*.csv.zst.age")
    data = bytearray(cipher.read_bytes())
    data[10] ^= 1
    cipher.write_bytes(bytes(data))
    with pytest.raises(GateFailed, match="truncated or altered at the destination"):
        _gate(ledger, dests, tmp_path)
    assert {s["state"] for s in ledger.dataset_states("r")} == {"backup_verified"}
    assert [e.kind for e in ledger.events(run_id="r")].count("gate_failed") == 2


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
