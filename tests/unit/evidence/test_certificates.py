"""Certificates of sanitization: true times and people from the ledger's events, the facts
an auditor asks for (where, how much, how many people, under which law), the HTML, and
certificates of the format before still verifying."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.evidence.certificate import verify_certificate, write_certificate
from retirement.phases.delete import record_decision
from tests.support.demo import CRM

if TYPE_CHECKING:
    from tests.support.demo import DemoRun


def _human_approval_and_deletion(demo: DemoRun) -> dict[str, Any]:
    """The deletion requested, approved by a person when they answer (not at the run's
    trigger time), every CRM table deleted and gated: the gate's summary."""
    demo.delivered()
    demo.request()
    ctx = demo.ctx()
    record_decision(
        ctx,
        approved=True,
        by="Li Wei",
        at=ctx.clock_stamp(),
        approver={"id": "li.wei", "name": "Li Wei"},
    )
    for dataset in CRM:
        demo.delete(dataset)
    return demo.gate_deletion()


def _certificates(demo: DemoRun, summary: dict[str, Any]) -> list[dict[str, Any]]:
    public = load_public_key(demo.keys.public_signing_key_pem())
    return [verify_certificate(Path(p), public, demo.ledger) for p in summary["certificates"]]


def _t(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def test_times_are_the_ledgers_and_approval_precedes_deletion_precedes_issue(
    demo: DemoRun,
) -> None:
    summary = _human_approval_and_deletion(demo)
    certs = _certificates(demo, summary)
    assert len(certs) == len(CRM)
    events = list(demo.ledger.events(run_id="r"))
    (approval,) = [e for e in events if e.kind == "deletion_approved"]
    verdict = [e for e in events if e.kind == "gate_passed"][-1]
    for cert in certs:
        dataset = cert["target"]["dataset"]
        deleting = [e for e in events if e.kind == "dataset_deleting" and e.dataset == dataset]
        approved = _t(cert["approval"]["approved_at"])
        assert approved <= _t(cert["approval"]["recorded_at"])
        assert approved < _t(cert["performed_at"]) < _t(cert["completed_at"])
        assert _t(cert["completed_at"]) < _t(cert["issued_at"])
        # each time is a chained event's: a certificate issued again is the same
        assert cert["approval"]["recorded_at"] == approval.at
        assert (cert["performed_at"], cert["completed_at"]) == (deleting[0].at, deleting[-1].at)
        assert cert["issued_at"] == cert["verification"]["verified_at"] == verdict.at
        # the run's trigger time is on none of them
        assert "2026-11-23T08:00:00" not in json.dumps(cert)


def test_people_are_the_task_that_deleted_the_plans_staff_and_the_approver(
    demo: DemoRun,
) -> None:
    certs = _certificates(demo, _human_approval_and_deletion(demo))
    cert = next(c for c in certs if c["target"]["dataset"] == "crm.customers")
    deleting = demo.ledger.events_of("r", ("dataset_deleting",), dataset="crm.customers")
    assert cert["performed_by"] == {
        "task": deleting[-1].actor,  # the task that deleted, not the gate
        "name": "Wang Fang",
        "title": "Head of IT operations",
        "contact": "it-ops@demo-trading.example",
    }
    assert cert["verification"]["verified_by"]["name"] == "Li Wei"
    assert cert["sanitization"]["organization"] == "演示贸易（上海）有限公司 IT department"
    assert cert["organization"]["dpo"]["title"] == "Data protection officer"
    assert cert["approval"]["approver"] == {"id": "li.wei", "name": "Li Wei"}
    assert cert["approval"]["auto"] is False


def test_where_how_much_how_many_people_and_under_which_law(demo: DemoRun) -> None:
    certs = _certificates(demo, _human_approval_and_deletion(demo))
    by = {c["target"]["dataset"]: c for c in certs}
    customers, invoices = by["crm.customers"], by["crm.invoices"]
    target = customers["target"]
    assert target["location"] == {"engine": "sqlite", "path": str(demo.db), "table": "customers"}
    assert isinstance(target["bytes"], int)
    assert target["bytes"] > 0
    assert target["individuals"] == 30  # distinct crm.customers.id
    assert target["individuals_basis"]["key_columns"] == ["id"]
    assert 0 < invoices["target"]["individuals"] <= 30  # distinct invoices.customer_id
    assert customers["standard"].startswith("NIST SP 800-88 Rev. 2 (September 2025)")
    assert customers["legal_basis"]["deletion"].startswith("PIPL Art. 47")
    assert customers["legal_basis"]["transfer"].startswith("PIPL Art. 22")
    assert customers["impact_assessment"]["file"] == "assessments/demo-successor-transfer.md"
    assert "transfer" not in invoices["legal_basis"]
    assert invoices["legal_basis"]["retention"].startswith("会计档案管理办法")
    assert customers["format_version"] == 2
    assert "password" not in json.dumps(certs)


def test_the_html_shows_what_becomes_of_the_backup_not_a_dict_method(demo: DemoRun) -> None:
    summary = _human_approval_and_deletion(demo)
    for path in summary["certificates"]:
        cert = json.loads(Path(path).read_text())
        html = Path(path).with_suffix(".html").read_text()
        assert "built-in method" not in html
        assert cert["backup"]["copy"] in html
        assert "NIST SP 800-88 Rev. 2" in html
        assert "Wang Fang" in html
        assert "PIPL Art. 47" in html


def test_a_format_1_certificate_still_verifies_and_renders(tmp_path: Path, demo: DemoRun) -> None:
    old = {
        "format_version": 1,
        "certificate_id": "cos-0000000000000001",
        "issued_at": "2026-01-01T00:00:00+00:00",
        "organization": {"name": "Old Co.", "uscc": "91310000MA1FL0000N"},
        "target": {
            "dataset": "crm.old",
            "kind": "table",
            "source_kind": "sqlite",
            "connection": "c",
            "data_class": "general",
            "rows": 3,
            "bytes": None,
        },
        "sanitization": {"method": "clear", "technique": "DELETE", "note": "", "tool": "t"},
        "verification": {"method": "m", "result": "passed", "scoped_left": 0},
        "performed_by": "airflow:retire__old.gate_deletion",
        "performed_at": "2026-01-01T00:00:00+00:00",
        "approval": {"approved_by": "bob", "approved_at": "x", "auto": False},
        "backup": {
            "manifest": "m",
            "ciphertext_sha256": "0" * 64,
            "copy": "kept",
            "deliveries": [],
        },
        "ledger": {"run_id": "r0"},
    }
    signing = demo.keys.signing_key()
    path, _sha = write_certificate(old, tmp_path, signing)
    assert json.loads(path.read_text())["format_version"] == 1  # as written then
    cert = verify_certificate(path, load_public_key(demo.keys.public_signing_key_pem()))
    assert cert["performed_by"] == "airflow:retire__old.gate_deletion"
    html = path.with_suffix(".html").read_text()
    assert "airflow:retire__old.gate_deletion" in html
    assert "built-in method" not in html


def test_real_times_come_from_the_run_contexts_clock(demo: DemoRun) -> None:
    """What happens now is stamped by ctx.clock() (injected here), not the trigger time."""
    from datetime import UTC

    from retirement.phases.backup import backup_dataset
    from retirement.phases.delete import auto_approve
    from tests.support.context import context

    fixed = datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC)
    ctx = context(
        demo.plan,
        demo.ledger,
        demo.keys,
        demo.tmp / "out",
        {"crm": demo.source},
        clock=lambda: fixed,
    )
    assert ctx.clock_stamp() == "2027-03-04T05:06:07.000000+00:00"
    with demo.source() as source:
        backup_dataset(ctx, "crm.customers", source)
    record = demo.ledger.dataset_state("r", "crm.customers")
    assert record is not None
    assert record.backup is not None
    assert record.backup.created_at == ctx.clock_stamp()
    auto_approve(ctx)
    (approval,) = demo.ledger.events_of("r", ("deletion_approved",))
    assert approval.payload["approved_at"] == ctx.clock_stamp()
