"""The deletion phase against a real ledger, a SQLite CRM and local destinations: proof
first, scoped and resumable deletion, the gate, signed certificates."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from retirement.crypto.keys import load_public_key
from retirement.errors import DeletionRefused, IntegrityError
from retirement.evidence.certificate import verify_certificate
from tests.support.demo import CRM, NOW, PLAN, DemoRun


def test_nothing_is_deleted_without_approval_or_after_a_rejection(demo: DemoRun) -> None:
    demo.delivered()
    before = demo.count("customers")
    with pytest.raises(DeletionRefused, match="has no deletion request"):
        demo.delete("crm.customers")
    demo.request()
    with pytest.raises(DeletionRefused, match="was not approved"):
        demo.delete("crm.customers")
    demo.decide(approved=False, by="alice")
    with pytest.raises(DeletionRefused, match="it was rejected"):
        demo.delete("crm.customers")
    assert demo.count("customers") == before


def test_refuses_without_verified_deliveries(demo: DemoRun) -> None:
    from retirement.errors import GateFailed

    demo.backup_all()
    demo.gate_backup()  # backed up and verified, never delivered
    with pytest.raises(DeletionRefused, match="gate_transfer's latest verdict .* is missing"):
        demo.request()
    with pytest.raises(GateFailed, match="no receipt"):
        demo.gate_transfer()
    with pytest.raises(DeletionRefused, match="gate_transfer's latest verdict .* is failed"):
        demo.request()


def test_a_source_changed_since_the_backup_is_refused_and_says_what_changed(demo: DemoRun) -> None:
    db = demo.db
    demo.approved()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE customers SET mobile = '13900000000' WHERE id = 2")
    with pytest.raises(DeletionRefused, match="same number of rows, but some changed"):
        demo.delete("crm.customers")
    assert demo.count("customers") == 30


def test_approved_deletion_is_scoped_resumable_verified_and_certified(demo: DemoRun) -> None:
    keys, db = demo.keys, demo.db
    demo.delivered()
    ledger = demo.ledger
    request = demo.request()
    assert "crm.customers" in request["datasets"]
    assert "| crm.customers | sensitive | 30 |" in request["body"]
    demo.decide(approved=True, by="alice (DPO)")
    assert demo.count("customers") == 30

    done = demo.delete("crm.customers")
    assert done["deleted"] == 30
    assert "VACUUM" in done["technique"]
    # Rows inserted after the backup are outside its scope: a re-run (as after a crash)
    # carries on and never touches them.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO customers (id, name) VALUES (9001, 'after the backup')")
    again = demo.delete("crm.customers")  # a re-run after it finished: nothing more
    assert again["resumed"] is True
    assert again["deleted"] == 30
    assert demo.count("customers") == 1
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM customers WHERE id = 9001")

    for dataset in ("crm.invoices", "crm.orders"):
        demo.delete(dataset)
    summary = demo.gate_deletion()
    assert len(summary["certificates"]) == 3
    pub = load_public_key(keys.public_signing_key_pem())
    cert_path = next(Path(p) for p in summary["certificates"] if "cos-" in p)
    cert = verify_certificate(cert_path, pub, ledger)
    assert cert["approval"]["approved_by"] == "alice (DPO)"
    assert cert["verification"]["scoped_left"] == 0
    assert cert["verification"]["residual_identifiers"] == 0
    assert cert_path.with_suffix(".html").exists()
    states = {s.dataset: s.state for s in ledger.dataset_states("r")}
    assert {states[d] for d in CRM} == {"deleted"}

    # An operator re-runs earlier phases after the deletion: nothing steps back.
    before = len(list(ledger.events()))
    assert demo.backup("crm.customers")["new"] is False
    demo.gate_backup()
    demo.transfer_all()
    demo.gate_transfer()
    assert {s.dataset: s.state for s in ledger.dataset_states("r")} == states
    added = [e.kind for e in ledger.events()][before:]
    assert added.count("gate_passed") == 2  # the two gates' verdicts, and their evidence only
    assert not [k for k in added if not k.startswith(("gate_", "artifact_gate_"))]

    from typer.testing import CliRunner

    from retirement.cli.root import app

    pem = demo.tmp / "signing.pub.pem"
    pem.write_bytes(keys.public_signing_key_pem())
    url = str(ledger.engine.url)
    args = ["verify-certificate", str(cert_path), "--public-key", str(pem), "--ledger", url]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "approved by alice (DPO); signature verified; the ledger agrees" in ok.output

    raw = cert_path.read_bytes()
    cert_path.write_bytes(raw.replace(b"alice (DPO)", b"mallory    "))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_certificate(cert_path, pub, ledger)
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1
    assert "does not verify" in bad.output


def test_inside_a_ledger_batch_deleting_is_committed_before_the_first_row_goes(
    demo: DemoRun,
) -> None:
    """A task killed mid-deletion must find 'deleting' on its retry (and resume), not a
    half-empty table it would refuse as changed since the backup."""
    from retirement.ledger.core import Ledger

    demo.approved(by="alice (DPO)")
    ledger = demo.ledger
    committed: list[str] = []

    def on_rows(_rows: int) -> None:  # what another process sees while rows are deleted
        committed.append(Ledger(ledger.engine).dataset_state("r", "crm.customers").state)

    with ledger.batch():
        demo.delete("crm.customers", on_rows=on_rows)
    assert committed
    assert set(committed) == {"deleting"}
    assert demo.count("customers") == 0


def test_gate_fails_when_identifiers_are_left(demo: DemoRun) -> None:
    db = demo.db
    from retirement.errors import GateFailed

    demo.approved()
    ledger = demo.ledger
    for dataset in CRM:
        demo.delete(dataset)
    with sqlite3.connect(db) as conn:  # a customer added after the backup, still there
        conn.execute(
            "INSERT INTO customers (id, name, id_card) VALUES (9002, '王伟', '11010519491231002X')"
        )
    with pytest.raises(GateFailed, match="no identifier is left"):
        demo.gate_deletion()
    states = {s.dataset: s.state for s in ledger.dataset_states("r")}
    assert states["crm.customers"] == "deleting"  # not marked deleted, no certificate


def test_destroy_backups_that_keep_nothing_are_crypto_erased(demo: DemoRun) -> None:
    keys = demo.keys
    from retirement.deletion.proof import ProofBook
    from retirement.errors import RetirementError
    from retirement.phases.certify import _backup_copy_fate
    from retirement.phases.gate_deletion import _erase_destroyed_backups
    from retirement.plan.model import load_plan
    from retirement.vault.verify import verify_backup

    demo.approved()
    ledger = demo.ledger
    for dataset in CRM:
        demo.delete(dataset)
    plan = load_plan(PLAN)
    erase = plan.dispositions["erase"].model_copy(update={"keep_backup_days": 0})
    plan = plan.model_copy(update={"dispositions": {**plan.dispositions, "erase": erase}})
    states = {s.dataset: s for s in ledger.dataset_states("r")}
    proofs = ProofBook(ledger, "r").proofs
    checked = [(proofs[d], {}) for d in CRM]
    ctx = demo.ctx()
    ctx.__dict__["plan"] = plan  # the run's plan, with a destroy that keeps no backup
    # crm.orders is "erase", but other erase datasets (exports) are not deleted yet: wait.
    assert _erase_destroyed_backups(ctx, checked) == set()
    others = [d for d, s in states.items() if s.disposition == "erase" and d not in CRM]
    checked += [(proofs[d], {}) for d in others]
    erased = _erase_destroyed_backups(ctx, checked)
    assert erased == {"erase"}
    assert "cryptographic erase" in _backup_copy_fate(plan, "erase", erased)
    assert [e.kind for e in ledger.events(run_id="r")].count("crypto_erased") == 1
    manifest = Path(states["crm.orders"].detail["backup"]["manifest"])
    with pytest.raises(RetirementError, match="destroyed"):
        verify_backup(
            manifest,
            load_public_key(keys.public_signing_key_pem()),
            [keys.identity("demo", "erase")],
        )


def test_restoring_a_retained_archive_needs_a_reason_that_the_ledger_keeps(demo: DemoRun) -> None:
    ledger = demo.ledger
    from typer.testing import CliRunner

    from retirement.cli.root import app

    invoices = Path(demo.backup("crm.invoices")["manifest"])
    orders = Path(demo.backup("crm.orders")["manifest"])
    master = demo.tmp / "keys" / "m.key"
    store = ["--key-store", str(demo.tmp / "keys"), "--master-key-file", str(master)]
    url = str(ledger.engine.url)
    runner = CliRunner()
    plain = runner.invoke(app, ["restore", str(orders), "--to", str(demo.tmp / "r1"), *store])
    assert plain.exit_code == 0, plain.output  # erase disposition: no retention
    refused = runner.invoke(
        app, ["restore", str(invoices), "--to", str(demo.tmp / "r2"), *store, "--ledger", url]
    )
    assert refused.exit_code == 2
    assert "retained archive (until 2057-01-01" in refused.output
    assert "PIPL Art. 47" in refused.output
    assert not (demo.tmp / "r2").exists()
    done = runner.invoke(
        app,
        [
            "restore",
            str(invoices),
            "--to",
            str(demo.tmp / "r3"),
            *store,
            "--ledger",
            url,
            "--reason",
            "tax audit 2027-031 requested by the Shanghai tax bureau",
        ],
    )
    assert done.exit_code == 0, done.output
    (event,) = [e for e in ledger.events() if e.kind == "archive_restored"]
    assert event.payload["reason"].startswith("tax audit 2027-031")
    assert event.dataset == "crm.invoices"
    assert event.actor.startswith("cli:")


def test_the_closure_dossier_audits_and_names_what_was_tampered_with(
    demo: DemoRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = demo.keys
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from retirement.cli.root import app
    from retirement.evidence import dossier_pages
    from retirement.evidence.dossier import build_dossier
    from retirement.plan.model import load_plan

    printed: list[str] = []
    pdf_html = dossier_pages.pdf_html

    def keep(root: Path, page: dict[str, Any]) -> str:
        printed.append(pdf_html(root, page))
        return printed[-1]

    monkeypatch.setattr(dossier_pages, "pdf_html", keep)
    monkeypatch.setattr(dossier_pages, "PDF_ROWS", 1)  # long lists are cut in the PDF only

    demo.approved()
    ledger = demo.ledger
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    index = build_dossier(
        load_plan(PLAN),
        plan_path=Path(PLAN),
        ledger=ledger,
        run_id="r",
        keys=keys,
        output_dir=demo.tmp / "out",
        generated=NOW,
    )
    root = index.parent
    assert "Closure dossier" in index.read_text()
    assert index.read_text().count(">JSON</a>, ") == 3  # every certificate
    assert "2 more: see index.html" in printed[0]
    assert "more: see index.html" not in index.read_text()
    pages = sorted((root / "gates").glob("gate_deletion.*.html"))
    assert pages  # the GX Data Docs of the gate, linked from the index
    assert "Great Expectations" in pages[0].read_text()
    assert f'href="gates/{pages[0].name}"' in index.read_text()
    published = ["--public-key", str(keys.root / "signing.pub.pem")]
    ok = CliRunner().invoke(app, ["audit", str(root), *published])
    assert ok.exit_code == 0, ok.output
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=root, check=True)
    subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signing.pub.pem",
            "-rawin",
            "-in",
            "SHA256SUMS",
            "-sigfile",
            "SHA256SUMS.sig",
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )

    copy = demo.tmp / "tampered"
    shutil.copytree(root, copy)
    cert = next((copy / "certificates").glob("*.json"))
    cert.write_text(cert.read_text().replace("alice", "bob  "))
    (copy / "extra.txt").write_text("slipped in")
    lines = (copy / "ledger.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"actor":"', '"actor":"x', 1)
    (copy / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    bad = CliRunner().invoke(app, ["audit", str(copy), *published])
    assert bad.exit_code == 1
    assert f"certificates/{cert.name}: sha256 differs from SHA256SUMS" in bad.output
    assert "does not verify" in bad.output
    assert "extra.txt: not listed in SHA256SUMS" in bad.output
    assert "ledger.jsonl: the chain recomputed from it ends at event" in bad.output

    pdf = root / "dossier.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "  dossier.pdf\n" in (root / "SHA256SUMS").read_text()
    flipped = demo.tmp / "flipped"
    shutil.copytree(root, flipped)
    data = bytearray((flipped / "dossier.pdf").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    (flipped / "dossier.pdf").write_bytes(bytes(data))
    one = CliRunner().invoke(app, ["audit", str(flipped), *published])
    assert one.exit_code == 1
    assert "dossier.pdf: sha256 differs from SHA256SUMS" in one.output
