"""Named approvers and the two-person rule (approval.required): who may answer each step,
distinct people, deletion only when enough have approved, and a wait that ran out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.errors import DeletionRefused
from retirement.ledger.core import Ledger
from retirement.model.state import RunState
from retirement.phases.approval import record_decision, record_timeout, remaining_approvers
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from tests.support.demo import NOW, PLAN, DemoRun

APPROVAL = """approval:
  approvers:
    - {name: Alice, role: DPO, user: alice}
    - {name: Bob, role: legal representative, user: bob}
    - {name: Carol, role: liquidator, user: carol}
  required: 2
  timeout: 3d
"""


@pytest.fixture
def two_person(tmp_path: Path) -> Iterator[DemoRun]:
    """The demo CRM, gated as run "r" of the demo plan with a two-person rule."""
    text = Path(PLAN).read_text()
    auto = "approval:\n  auto_approve: true"
    assert auto in text
    plan = tmp_path / "two.yaml"
    plan.write_text(text.replace(auto, APPROVAL.rstrip() + "\n  #"))
    generate(tmp_path / "src", customers=10)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    demo = DemoRun(tmp_path, ledger, keys, tmp_path / "src" / "crm.sqlite", plan=str(plan))
    check_plan(demo.ctx())
    inventory_source(demo.ctx(), "crm")
    gate_inventory(demo.ctx())
    demo.delivered()
    yield demo
    ledger.close()


def _ids(users: list[dict[str, str]]) -> list[str]:
    return [u["id"] for u in users]


def test_two_distinct_approvers_are_needed_before_anything_is_deleted(two_person: DemoRun) -> None:
    demo = two_person
    request = demo.request()["request"]
    ctx = demo.ctx()
    assert _ids(remaining_approvers(ctx, 1, request)) == ["alice", "bob", "carol"]
    done = record_decision(ctx, approved=True, by="Alice", user="alice", at=NOW, step=1)
    assert done is False
    assert demo.ledger.run_state("r") is RunState.AWAITING_APPROVAL
    before = demo.count("customers")
    with pytest.raises(DeletionRefused, match="approved by 1 of the 2 distinct approvers"):
        demo.delete("crm.customers")
    # step 2 goes to the others only; Alice answering it as well is refused
    assert _ids(remaining_approvers(ctx, 2, request)) == ["bob", "carol"]
    with pytest.raises(DeletionRefused, match="already approved this deletion request"):
        record_decision(ctx, approved=True, by="Alice", user="alice", at=NOW, step=2)
    assert demo.count("customers") == before
    assert record_decision(ctx, approved=True, by="Bob", user="bob", at=NOW, step=2) is True
    assert demo.ledger.run_state("r") is RunState.DELETING
    demo.delete("crm.customers")
    assert demo.count("customers") == 0
    demo.gate_deletion()
    (cert, *_) = [
        a for a in demo.ledger.artifacts("r", kind="certificate") if a["dataset"] == "crm.customers"
    ]
    import json

    approvers = json.loads(Path(cert["location"]).read_text())["approval"]["approvers"]
    assert [(a["by"], a["user"]) for a in approvers] == [("Alice", "alice"), ("Bob", "bob")]


def test_a_rejection_at_the_second_step_deletes_nothing(two_person: DemoRun) -> None:
    demo = two_person
    demo.request()
    record_decision(demo.ctx(), approved=True, by="Alice", user="alice", at=NOW, step=1)
    record_decision(demo.ctx(), approved=False, by="Carol", user="carol", at=NOW, step=2)
    assert demo.ledger.run_state("r") is RunState.REJECTED
    with pytest.raises(DeletionRefused, match="it was rejected"):
        demo.delete("crm.customers")


def test_an_approval_that_timed_out_is_recorded_and_deletes_nothing(two_person: DemoRun) -> None:
    demo = two_person
    demo.request()
    record_timeout(demo.ctx(), step=1, waited="3 days, 0:00:00", at=NOW)
    (timed_out,) = demo.ledger.events_of("r", ("approval_timed_out",))
    assert timed_out.payload["step"] == 1
    assert demo.ledger.run_state("r") is RunState.FAILED
    (failed,) = demo.ledger.events_of("r", ("run_failed",))
    assert "not answered within 3 days" in failed.payload["error"]
    with pytest.raises(DeletionRefused, match="was not approved"):
        demo.delete("crm.customers")
