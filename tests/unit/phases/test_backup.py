"""The backup phase against a real ledger and the demo CRM: versions, recipients, the
restore-verifying gate, crypto-erase."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from retirement.crypto.keys import load_public_key
from retirement.errors import GateFailed, IntegrityError, KeyStoreError
from retirement.phases.erase import crypto_erase
from retirement.vault.verify import verify_backup
from tests.support.demo import DemoRun, demo_run


def test_rerun_with_unchanged_source_changes_nothing(demo: DemoRun) -> None:
    first = demo.backup()
    assert first["new"] is True
    events = demo.ledger.verify().events
    files = sorted(p.name for p in demo.vault.rglob("*") if p.is_file())
    again = demo.backup()
    assert again["new"] is False
    assert again["manifest"] == first["manifest"]
    assert demo.ledger.verify().events == events
    assert sorted(p.name for p in demo.vault.rglob("*") if p.is_file()) == files


def test_changed_source_makes_a_new_version_and_says_why(demo: DemoRun) -> None:
    first = demo.backup()
    with sqlite3.connect(demo.db) as conn:
        conn.execute("UPDATE customers SET mobile = '13800000000' WHERE id = 1")
    second = demo.backup()
    assert second["new"] is True
    assert second["manifest"] != first["manifest"]
    state = demo.ledger.dataset_state("r", "crm.customers")
    assert "the source changed since the backup" in state.detail["backup"]["reason"]


def test_transfer_backups_are_encrypted_to_the_recipient_too(demo: DemoRun) -> None:
    result = demo.backup()  # crm.customers: hand_over (transfer to the successor)
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert len(manifest["recipients"]) == 2
    assert (
        "age1vc6ruva34lrxjr7wp47a3wnxzgq6tgtspqu9rcd4w0ffd82n4s4s26gpdt" in manifest["recipients"]
    )


def test_gate_backup_verifies_all_and_fails_on_a_bad_one(demo: DemoRun) -> None:
    demo.backup_all()
    summary = demo.gate_backup()
    assert summary["verified"] == 6
    assert summary["failures"] == []
    state = demo.ledger.dataset_state("r", "crm.orders")
    broken = Path(state.detail["backup"]["manifest"])
    cipher = broken.parent / broken.name.removesuffix(".manifest.json")
    cipher.write_bytes(cipher.read_bytes()[:-1])
    with pytest.raises(GateFailed, match="crm.orders|altered or truncated"):
        demo.gate_backup()
    assert list(demo.ledger.events(run_id="r"))[-1].kind == "gate_failed"


def test_gate_backup_fails_without_backups(demo: DemoRun) -> None:
    with pytest.raises(GateFailed, match="no backup"):
        demo.gate_backup()


def test_crypto_erase_is_recorded_and_final(demo: DemoRun) -> None:
    keys = demo.keys
    result = demo.backup("crm.marketing_events")  # erase: the archive key only
    keys.archive_key("demo", "hand_over")
    keys.archive_key("demo", "accounting_archive")
    done = crypto_erase("demo", "erase", keys=keys, ledger=demo.ledger, actor="t", reason="expired")
    event = list(demo.ledger.events())[done["event"] - 1]
    assert event.kind == "crypto_erased"
    assert event.payload["method"].startswith("cryptographic erase")
    with pytest.raises(KeyStoreError, match="destroyed"):
        keys.identity("demo", "erase")
    # Not with the master key, not with any other archive identity: nobody can decrypt it.
    public = load_public_key(keys.public_signing_key_pem())
    others = [keys.identity("demo", "hand_over"), keys.identity("demo", "accounting_archive")]
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        verify_backup(Path(result["manifest"]), public, others)
    demo.ledger.verify()


def test_gate_backup_fails_on_duplicate_keys(tmp_path: Path) -> None:
    """The plan says crm.invoices is keyed by invoice_no; a duplicate must stop the run (the
    inventory records the key's problem; gate_backup checks the restored stream itself)."""
    from retirement.demo import generate

    generate(tmp_path / "src", customers=20)
    with sqlite3.connect(tmp_path / "src" / "crm.sqlite") as conn:
        conn.execute("CREATE TABLE inv2 AS SELECT * FROM invoices")  # no primary key
        conn.execute("INSERT INTO inv2 SELECT * FROM invoices LIMIT 1")
        conn.execute("DROP TABLE invoices")
        conn.execute("ALTER TABLE inv2 RENAME TO invoices")
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger
    from retirement.phases.backup import backup_dataset
    from retirement.phases.gate_backup import gate_backup
    from retirement.phases.inventory import inventory_source
    from retirement.phases.plan_check import check_plan

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    demo = DemoRun(tmp_path, ledger, keys, tmp_path / "src" / "crm.sqlite")
    ctx = demo.ctx(include=["invoices"])
    check_plan(ctx)
    inventory_source(ctx, "crm")
    assert "not unique" in ledger.dataset_state("r", "crm.invoices").detail["key"]["problem"]
    with demo.source(include=["invoices"]) as source:
        backup_dataset(ctx, "crm.invoices", source)
    with pytest.raises(GateFailed, match="key columns are unique"):
        gate_backup(ctx)
    kinds = [e.kind for e in ledger.events(run_id="r")]
    assert kinds[-1] == "gate_failed"
    assert "artifact_gate_result" in kinds
    (state,) = ledger.dataset_states("r")
    assert state.state == "backed_up"  # never marked verified
    ledger.close()


def test_gate_backup_compares_nulls_with_the_source_profile(demo: DemoRun) -> None:
    """A manifest whose NULL profile disagrees with the restored data fails the gate, even
    when its signature is valid (e.g. a writer bug)."""
    from retirement.crypto.signing import write_signed
    from retirement.model.manifest import Manifest

    result = demo.backup("crm.complaints")
    path = Path(result["manifest"])
    data = json.loads(path.read_text())
    data["fingerprint"]["null_counts"][0] += 1
    write_signed(Manifest.from_bytes(json.dumps(data).encode()), path, demo.keys.signing_key())
    for state in demo.ledger.dataset_states("r"):
        if state.dataset != "crm.complaints":
            demo.backup(state.dataset)
    with pytest.raises(GateFailed, match="NULLs per column equal the source profile") as caught:
        demo.gate_backup()
    assert "differs from the manifest recorded in the ledger" in str(caught.value)


def test_a_demo_run_starts_inventoried_and_gated(tmp_path: Path) -> None:
    run = demo_run(tmp_path, customers=5)
    assert {s.state for s in run.ledger.dataset_states("r")} == {"inventoried"}
    assert run.ledger.events_of("r", ("gate_passed",))
    run.ledger.close()
