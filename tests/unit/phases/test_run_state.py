"""A run's state advances with its phases (running, awaiting approval, deleting or rejected,
sealed), a task that fails for good marks it failed, and the same task succeeding returns
it to where it stood; each dataset event carries only what its phase added."""

from __future__ import annotations

from pathlib import Path

from retirement.errors import GateFailed
from retirement.model.records import PHASE_KEYS
from retirement.model.state import RunState
from retirement.phases.run_state import run_failed, run_recovered
from retirement.phases.seal import seal
from retirement.ui.overview import build_overview
from tests.support.demo import CRM, PLAN, DemoRun

ADDED = {
    "dataset_backed_up": {"backup"},
    "dataset_backup_verified": {"verify"},
    "dataset_delivered": {"deliveries"},
    "dataset_deleting": {"deletion"},
    "dataset_deleted": {"certificate"},
}


def _states(demo: DemoRun) -> list[str]:
    return [e.kind for e in demo.ledger.events(run_id="r") if e.kind.startswith("run_")]


def test_a_run_advances_through_its_states_to_sealed(demo: DemoRun) -> None:
    ledger = demo.ledger
    assert ledger.run_state("r") is RunState.RUNNING
    demo.delivered()
    demo.request()
    assert ledger.run_state("r") is RunState.AWAITING_APPROVAL
    demo.decide(approved=True)
    assert ledger.run_state("r") is RunState.DELETING
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    seal(demo.ctx())
    assert ledger.run_state("r") is RunState.SEALED
    assert _states(demo) == [
        "run_started",
        "run_awaiting_approval",
        "run_deleting",
        "run_sealed",
    ]
    ledger.verify()


def test_each_dataset_event_carries_only_what_its_phase_added(demo: DemoRun) -> None:
    demo.approved()
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    seen = set()
    for event in demo.ledger.events(run_id="r"):
        if event.kind in ADDED:
            assert set(event.payload) == ADDED[event.kind], event.kind
            seen.add(event.kind)
        elif event.kind == "dataset_inventoried":
            assert not set(event.payload) & set(PHASE_KEYS)
    assert seen == set(ADDED)
    row = demo.ledger.dataset_state("r", "crm.customers")
    assert row is not None
    assert set(PHASE_KEYS) <= set(row.detail)  # the row holds the record so far
    assert row.backup is not None
    assert row.certificate
    assert row.deletion is not None
    assert row.deletion.result is not None


def test_a_rejection_is_the_runs_state_and_the_page_shows_it(demo: DemoRun) -> None:
    demo.delivered()
    demo.request()
    demo.decide(approved=False)
    assert demo.ledger.run_state("r") is RunState.REJECTED
    page = build_overview(demo.ledger, plans_dir=demo.tmp, output_dir=None)
    assert page.runs[0].status == "deletion rejected"
    demo.request()  # the request cleared and asked again
    assert demo.ledger.run_state("r") is RunState.AWAITING_APPROVAL


def test_a_failed_task_fails_the_run_until_that_task_succeeds(demo: DemoRun) -> None:
    ctx = demo.ctx()
    demo.delivered()
    demo.request()
    demo.decide(approved=True)
    failing = {"task": "delete", "map_index": 1}
    run_failed(ctx, failing, GateFailed("gate_x", "something broke"))
    assert demo.ledger.run_state("r") is RunState.FAILED
    page = build_overview(demo.ledger, plans_dir=demo.tmp, output_dir=None)
    assert page.runs[0].status == "failed"
    (failed,) = demo.ledger.events_of("r", ("run_failed",))
    assert failed.payload["was"] == "deleting"
    assert failed.payload["error"].startswith("GateFailed: ")
    run_failed(ctx, failing, GateFailed("gate_x", "again"))  # failed already: one record
    assert len(demo.ledger.events_of("r", ("run_failed",))) == 1
    run_recovered(ctx, {"task": "delete", "map_index": 0})  # another batch: still failed
    assert demo.ledger.run_state("r") is RunState.FAILED
    run_recovered(ctx, failing)  # the failed batch cleared and re-run
    assert demo.ledger.run_state("r") is RunState.DELETING
    demo.ledger.verify()


def test_a_run_the_ledger_never_started_is_not_marked(demo: DemoRun) -> None:
    ctx = demo.ctx()
    other = type(ctx)(**{**ctx.__dict__, "run_id": "never-started", "_keys": []})
    run_failed(other, {"task": "plan_check", "map_index": -1}, ValueError("bad plan"))
    assert demo.ledger.run_state("never-started") is None


def test_the_dossier_holds_the_plan_the_run_was_checked_with(tmp_path: Path) -> None:
    """An edit of the YAML while the run waited changes nothing in it, its dossier included
    (it used to copy the file as it was at seal time)."""
    from retirement.crypto.keys import KeyStore
    from retirement.demo import generate
    from retirement.ledger.core import Ledger
    from retirement.phases.gate_inventory import gate_inventory
    from retirement.phases.inventory import inventory_source
    from retirement.phases.plan_check import check_plan

    generate(tmp_path / "src", customers=10)
    plan = tmp_path / "plan.yaml"
    checked = Path(PLAN).read_bytes()
    plan.write_bytes(checked)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    demo = DemoRun(tmp_path, ledger, keys, tmp_path / "src" / "crm.sqlite", plan=str(plan))
    check_plan(demo.ctx())
    inventory_source(demo.ctx(), "crm")
    gate_inventory(demo.ctx())
    plan.write_text(checked.decode().replace("years: 30", "years: 31"))  # edited meanwhile
    index = seal(demo.ctx())
    assert (index.parent / "plan.yaml").read_bytes() == checked
    ledger.close()
