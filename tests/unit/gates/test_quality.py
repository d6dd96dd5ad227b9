"""The inventory gate (great-expectations): passes a sound inventory, fails loudly otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from retirement.errors import GateFailed
from retirement.gates.quality import gate_inventory as gx_gate
from retirement.inventory.scan import ColumnReport, DatasetReport
from retirement.ledger.core import Ledger
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.plan_check import check_plan
from retirement.plan.policy import ClassificationPolicy
from tests.support.context import context

POLICY = ClassificationPolicy.default()
PLAN = Path(__file__).resolve().parents[3] / "include" / "plans" / "demo.yaml"


def _report(
    name: str = "customers",
    *,
    cls: str = "sensitive",
    col_cls: str = "sensitive",
    disposition: str | None = "hand_over",
    rows: int = 10,
) -> DatasetReport:
    col = ColumnReport(
        "id_card", "TEXT", "cn_resident_id", 1.0, 1.0, col_cls, {"cn_resident_id": rows}
    )
    return DatasetReport(
        "crm", name, "table", rows, 100, cls, POLICY.grades[cls], (col,), disposition=disposition
    )


def test_sound_inventory_passes() -> None:
    result = gx_gate(
        [_report(), _report("orders", cls="general", col_cls="sensitive", disposition="erase")],
        POLICY,
        ["hand_over", "erase"],
    )
    assert result.success
    assert result.results["datasets"]["success"] is True


@pytest.mark.parametrize(
    ("report", "message"),
    [
        pytest.param(
            _report(col_cls="general"),
            "no column with validated identifiers is general",
            id="validated-column-general",
        ),
        pytest.param(
            _report(disposition=None), "every dataset has a disposition", id="no-disposition"
        ),
        pytest.param(
            _report(disposition="shred"),
            "every dataset has a disposition",
            id="unknown-disposition",
        ),
        pytest.param(_report(rows=-1), "row counts are not negative", id="negative-rows"),
    ],
)
def test_each_failure_fails_the_gate(report: DatasetReport, message: str) -> None:
    with pytest.raises(GateFailed, match=message) as caught:
        gx_gate([report], POLICY, ["hand_over", "erase"])
    assert caught.value.result.success is False


def test_duplicate_datasets_fail() -> None:
    with pytest.raises(GateFailed, match="each dataset once"):
        gx_gate([_report(), _report()], POLICY, ["hand_over"])


def test_failed_gate_is_recorded_with_its_evidence(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    from retirement.crypto.keys import KeyStore
    from retirement.sources.sql import SqlSource

    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"  # its foreign keys are read: none
    # (plan_check asks the key store whether the plan's archive keys were erased)
    ctx = context(PLAN, ledger, keys, tmp_path, {"crm": lambda: SqlSource("crm", crm)})
    check_plan(ctx)
    bad = _report(col_cls="general")
    ledger.set_dataset_state("r", bad.qualified, "inventoried", actor="t", payload=bad.to_json())
    with pytest.raises(GateFailed):
        gate_inventory(ctx)
    events = list(ledger.events(run_id="r"))
    assert events[-1].kind == "gate_failed"
    assert "validated identifiers" in events[-1].payload["failures"][0]
    evidence = list((tmp_path / "inventory" / "r").glob("gate_inventory.*.gx.json"))
    assert len(evidence) == 1
    assert (tmp_path / "inventory" / "r" / "inventory.html").exists()
    ledger.verify()


def test_empty_inventory_fails(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with pytest.raises(GateFailed, match="no dataset was inventoried"):
        gate_inventory(context(PLAN, ledger, None, tmp_path, {}))
