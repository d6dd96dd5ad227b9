"""Retention expiry against a real ledger and local destinations: nothing before its date,
a legal hold blocks, then copies removed, the key crypto-erased and a certificate issued."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from retirement.crypto.keys import load_public_key
from retirement.errors import RetirementError
from retirement.evidence.certificate import verify_certificate
from retirement.phases.retention_expiry import expire
from retirement.plan.model import Plan, load_plan
from retirement.vault.verify import verify_backup
from tests.support.demo import PLAN, DemoRun


def _expire(demo: DemoRun, today: date, plan: Plan | None = None) -> list[dict]:
    ctx = demo.ctx()
    return expire(
        plan or load_plan(PLAN),
        ledger=demo.ledger,
        keys=demo.keys,
        today=today,
        destination_for=ctx.destination,
        output_dir=demo.tmp / "out",
        actor="airflow:retention_expiry",
    )


def test_archives_expire_at_their_dates_unless_held(demo: DemoRun) -> None:
    demo.backup_all()
    demo.gate_backup()
    ledger, keys, tmp_path = demo.ledger, demo.keys, demo.tmp
    demo.transfer_all()
    archived = sorted((tmp_path / "dest" / "archive").rglob("*"))
    assert [p for p in archived if p.is_file()]
    invoices = next(s for s in ledger.dataset_states("r") if s.dataset == "crm.invoices").detail[
        "backup"
    ]["manifest"]

    assert _expire(demo, date(2026, 12, 1)) == []  # nothing due yet
    # The backups of the erase disposition are kept 30 days (keep_backup_days), then erased.
    done = _expire(demo, date(2026, 12, 24))
    assert [d["disposition"] for d in done] == ["erase"]
    with pytest.raises(RetirementError, match="destroyed"):
        keys.identity("demo", "erase")

    plan = load_plan(PLAN)
    held = plan.dispositions["accounting_archive"].model_copy(
        update={"legal_hold": "court order 2056-17: keep until the case closes"}
    )
    held_plan = plan.model_copy(
        update={"dispositions": {**plan.dispositions, "accounting_archive": held}}
    )
    assert _expire(demo, date(2057, 1, 2), held_plan) == []
    assert [e.kind for e in ledger.events()].count("expiry_blocked") == 1
    keys.identity("demo", "accounting_archive")  # still there

    done = _expire(demo, date(2057, 1, 2))
    assert [d["disposition"] for d in done] == ["accounting_archive"]
    assert done[0]["copies"] == 3  # age file, manifest and signature at the archive
    assert not [p for p in (tmp_path / "dest" / "archive").rglob("*") if p.is_file()]
    assert not Path(invoices).exists()
    cert = verify_certificate(
        Path(done[0]["certificate"]), load_public_key(keys.public_signing_key_pem())
    )
    assert cert["sanitization"]["method"] == "cryptographic erase"
    kinds = [e.kind for e in ledger.events()]
    assert kinds.count("crypto_erased") == 2
    assert kinds.count("archive_expired") == 2
    ledger.verify()
    assert _expire(demo, date(2057, 1, 3)) == []  # nothing left to do


def test_a_backup_still_decrypts_until_its_key_is_erased(demo: DemoRun) -> None:
    demo.backup_all()
    demo.gate_backup()
    ledger, keys = demo.ledger, demo.keys
    orders = next(s for s in ledger.dataset_states("r") if s.dataset == "crm.orders")
    manifest = Path(orders.detail["backup"]["manifest"])
    public = load_public_key(keys.public_signing_key_pem())
    verify_backup(manifest, public, [keys.identity("demo", "erase")])
    _expire(demo, date(2026, 12, 24))
    assert not manifest.exists()  # vault files removed with the key


def test_expiry_certificates_verify_against_the_ledger(demo: DemoRun, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from retirement.cli.root import app
    from retirement.errors import IntegrityError

    demo.backup_all()
    demo.gate_backup()
    demo.transfer_all()
    done = _expire(demo, date(2026, 12, 24))
    cert_path = Path(done[0]["certificate"])
    public = load_public_key(demo.keys.public_signing_key_pem())
    cert = verify_certificate(cert_path, public, demo.ledger)
    assert cert["type"] == "retention_expiry"
    assert cert["target"]["datasets"]  # which datasets the erased archives held
    assert cert["performed_by"]["task"] == "airflow:retention_expiry"

    pem = tmp_path / "signing.pub.pem"
    pem.write_bytes(demo.keys.public_signing_key_pem())
    url = str(demo.ledger.engine.url)
    args = ["verify-certificate", str(cert_path), "--public-key", str(pem), "--ledger", url]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "the ledger agrees" in ok.output

    # A certificate the ledger never recorded (signed with the genuine key) is refused.
    from retirement.evidence.certificate import write_certificate

    forged, _ = write_certificate(
        {**cert, "issued_at": "2026-12-25"}, tmp_path / "forged", demo.keys.signing_key()
    )
    with pytest.raises(IntegrityError, match="no archive_expired event"):
        verify_certificate(forged, public, demo.ledger)
