"""A preview run: it reports, and can never be approved, continued or sealed."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.errors import LedgerError, PreviewOnly
from retirement.ledger.core import Ledger
from retirement.model.state import RunState
from retirement.phases.context import RunContext
from retirement.phases.delete import auto_approve, deletion_request, record_decision
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from retirement.phases.preview import open_preview, report
from retirement.phases.seal import seal
from retirement.phases.transfer import delivery_batches
from retirement.sources.sql import SqlSource
from tests.support.context import context
from tests.support.demo import NOW, PLAN, DemoRun


def _ctx(tmp: Path, ledger: Ledger, run_id: str = "p", keys: KeyStore | None = None) -> RunContext:
    db = tmp / "src" / "crm.sqlite"
    return context(
        PLAN,
        ledger,
        keys,
        tmp / "out",
        {"crm": lambda: SqlSource("crm", f"sqlite:///{db}")},
        run_id=run_id,
    )


@pytest.fixture
def previewed(tmp_path: Path) -> RunContext:
    """Run "p" of the demo plan (crm only) previewed: opened, inventoried, reported."""
    generate(tmp_path / "src", customers=20)
    ctx = _ctx(tmp_path, Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}"))
    assert open_preview(ctx) == ["crm", "exports"]
    inventory_source(ctx, "crm")
    report(ctx)
    return ctx


def test_the_report_says_what_a_run_would_do(previewed: RunContext) -> None:
    (folder,) = (previewed.layout.root / "preview").iterdir()
    doc = json.loads((folder / "preview.json").read_text())
    rows = {d["dataset"]: d for d in doc["datasets"]}
    invoices, customers, orders = rows["crm.invoices"], rows["crm.customers"], rows["crm.orders"]
    assert (invoices["class"], invoices["disposition"], invoices["action"]) == (
        "sensitive",
        "accounting_archive",
        "retain",
    )
    assert invoices["retention_end"] == "2057-01-01"  # 30 years from the next 1 January
    assert invoices["deliveries"] == [
        {"destination": "archive", "kind": "local", "path": "archive/demo/crm.invoices/"}
    ]
    assert invoices["deletion"]["method"].startswith("DELETE by key (invoice_no)")
    assert customers["deliveries"][0]["destination"] == "successor_drop"
    assert customers["notices"] == 20
    assert customers["retention_end"] is None
    assert orders["deliveries"] == []
    assert orders["retention_end"] == "2026-12-23"
    assert all(d["backup"] for d in doc["datasets"])
    assert doc["totals"]["deleted_rows"] == sum(d["rows"] for d in doc["datasets"])
    assert doc["totals"]["by_disposition"]["erase"]["deliveries"] == 0
    html = (folder / "preview.html").read_text()
    assert "PREVIEW — nothing was backed up, delivered or deleted." in html
    assert "archive/demo/crm.invoices/" in html


def test_a_preview_cannot_be_approved_continued_or_sealed(previewed: RunContext) -> None:
    ctx = previewed
    for step in (gate_inventory, delivery_batches, deletion_request, auto_approve, seal):
        with pytest.raises(PreviewOnly, match="is a preview"):
            step(ctx)
    with pytest.raises(PreviewOnly):
        record_decision(ctx, approved=True, by="alice", at=ctx.stamp)
    with pytest.raises(LedgerError, match="cannot be re-opened"):
        check_plan(ctx)  # the same run as a real one
    for state in (RunState.AWAITING_APPROVAL, RunState.DELETING, RunState.SEALED):
        with pytest.raises(LedgerError):
            ctx.ledger.set_run_state(ctx.run_id, state, actor="alice")
    assert ctx.ledger.run_state(ctx.run_id) is RunState.PREVIEW
    kinds = {e.kind for e in ctx.ledger.events()}
    assert kinds == {"preview_started", "preview_inventoried", "preview_reported"}


def test_a_real_run_never_becomes_a_preview(tmp_path: Path) -> None:
    generate(tmp_path / "src", customers=5)
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ctx = _ctx(tmp_path, ledger, run_id="r", keys=keys)  # a real run checks its archive keys
    check_plan(ctx)
    with pytest.raises(LedgerError, match="cannot be re-opened"):
        open_preview(ctx)
    with pytest.raises(PreviewOnly, match="not a preview"):
        report(ctx)
    ctx.ledger.set_run_state("r", RunState.FAILED, actor="t")
    with pytest.raises(LedgerError, match="not a preview"):
        ctx.ledger.set_run_state("r", RunState.PREVIEW, actor="t")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(list(RunState)), max_size=12))
def test_no_sequence_of_state_changes_takes_a_preview_out_of_preview(
    changes: list[RunState],
) -> None:
    """Whatever is asked of the ledger, in any order (a failure and its recovery included),
    a preview run is only ever preview or failed."""
    ledger = Ledger.open("sqlite://")
    ledger.start_run(
        "p", plan_name="x", plan_sha256="0" * 64, scenario="change", actor="t", preview=True
    )
    for state in changes:
        with contextlib.suppress(LedgerError):
            ledger.set_run_state("p", state, actor="t")
        assert ledger.run_state("p") in (RunState.PREVIEW, RunState.FAILED)
    kinds = {e.kind for e in ledger.events()}
    assert kinds <= {"preview_started", "run_failed", "run_preview"}
    ledger.close()


def test_the_retirement_page_shows_a_preview_as_a_preview(previewed: RunContext) -> None:
    from retirement.ui.overview import run_overview

    shown = run_overview(previewed.ledger, previewed.run_id, output_dir=previewed.layout.root)
    assert shown is not None
    (run,) = shown.runs
    assert run.status == "preview"
    assert run.datasets == ()  # nothing in it is backed up, delivered or deleted


def test_the_approval_text_shows_the_totals_the_preview_reported(demo: DemoRun) -> None:
    """The demo previewed (run "p"), then run for real (run "r") up to the approval: the
    approval text holds the preview report's totals per disposition, names escaped."""
    from retirement.evidence.preview import totals_markdown
    from retirement.model.ids import shown

    preview = context(
        PLAN, demo.ledger, None, demo.tmp / "out", {"crm": demo.source}, run_id="p", now=NOW
    )
    open_preview(preview)
    inventory_source(preview, "crm")
    report(preview)
    (folder,) = (demo.tmp / "out" / "preview").iterdir()
    reported = json.loads((folder / "preview.json").read_text())["totals"]
    demo.delivered()
    body = demo.request()["body"]
    assert totals_markdown(reported, shown) in body
    assert "| accounting\\_archive | retain | 1 | 30 | archive | 1 | 30 | 0 | 2057-01-01 |" in body
    transfer = reported["by_disposition"]["hand_over"]
    assert transfer["notices"] == 30
    assert transfer["destinations"] == ["successor_drop"]
    assert f"| hand\\_over | transfer | {transfer['datasets']} |" in body
    assert "successor\\_drop" in body
