"""The backup phase against a real ledger: idempotent re-runs, changed sources, the gate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.errors import GateFailed
from retirement.ledger.core import Ledger
from retirement.phases.backup import backup_dataset, gate_backup
from retirement.phases.inventory import check_plan, inventory_source
from retirement.sources.sql import SqlSource
from tests.unit.demo_run import NOW, PLAN, _backup


def _events(ledger: Ledger) -> int:
    return ledger.verify().events


def test_rerun_with_unchanged_source_changes_nothing(setup) -> None:  # noqa: ANN001
    ledger, _, _, vault = setup
    first = _backup(setup)
    assert first["new"] is True
    events = _events(ledger)
    files = sorted(p.name for p in vault.rglob("*") if p.is_file())
    again = _backup(setup)
    assert again["new"] is False
    assert again["manifest"] == first["manifest"]
    assert _events(ledger) == events
    assert sorted(p.name for p in vault.rglob("*") if p.is_file()) == files


def test_changed_source_makes_a_new_version_and_says_why(setup) -> None:  # noqa: ANN001
    ledger, _, db, _ = setup
    first = _backup(setup)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE customers SET mobile = '13800000000' WHERE id = 1")
    second = _backup(setup)
    assert second["new"] is True
    assert second["manifest"] != first["manifest"]
    (state,) = [s for s in ledger.dataset_states("r") if s["dataset"] == "crm.customers"]
    assert "the source changed since the backup" in state["detail"]["backup"]["reason"]


def test_transfer_backups_are_encrypted_to_the_recipient_too(setup) -> None:  # noqa: ANN001
    import json

    result = _backup(setup)  # crm.customers: hand_over (transfer to the successor)
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert len(manifest["recipients"]) == 2
    assert (
        "age1vc6ruva34lrxjr7wp47a3wnxzgq6tgtspqu9rcd4w0ffd82n4s4s26gpdt" in manifest["recipients"]
    )


def test_gate_backup_verifies_all_and_fails_on_a_bad_one(setup) -> None:  # noqa: ANN001
    ledger, keys, _, _ = setup
    for state in ledger.dataset_states("r"):
        _backup(setup, state["dataset"])
    summary = gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    assert summary["verified"] == 6
    assert summary["failures"] == []
    broken = Path(
        next(s for s in ledger.dataset_states("r") if s["dataset"] == "crm.orders")["detail"][
            "backup"
        ]["manifest"]
    )
    cipher = broken.parent / broken.name.removesuffix(".manifest.json")
    cipher.write_bytes(cipher.read_bytes()[:-1])
    with pytest.raises(GateFailed, match="crm.orders|altered or truncated"):
        gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    assert list(ledger.events(run_id="r"))[-1].kind == "gate_failed"


def test_gate_backup_fails_without_backups(setup) -> None:  # noqa: ANN001
    ledger, keys, _, _ = setup
    with pytest.raises(GateFailed, match="no backup"):
        gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")


def test_crypto_erase_is_recorded_and_final(setup) -> None:  # noqa: ANN001
    from retirement.crypto.keys import load_public_key
    from retirement.errors import IntegrityError, KeyStoreError
    from retirement.phases.backup import crypto_erase
    from retirement.vault.verify import verify_backup

    ledger, keys, _, _ = setup
    result = _backup(setup, "crm.marketing_events")  # erase: the archive key only
    keys.archive_key("demo", "hand_over")
    keys.archive_key("demo", "accounting_archive")
    done = crypto_erase("demo", "erase", keys=keys, ledger=ledger, actor="t", reason="expired")
    event = list(ledger.events())[done["event"] - 1]
    assert event.kind == "crypto_erased"
    assert event.payload["method"].startswith("cryptographic erase")
    with pytest.raises(KeyStoreError, match="destroyed"):
        keys.identity("demo", "erase")
    # Not with the master key, not with any other archive identity: nobody can decrypt it.
    public = load_public_key(keys.public_signing_key_pem())
    others = [keys.identity("demo", "hand_over"), keys.identity("demo", "accounting_archive")]
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        verify_backup(Path(result["manifest"]), public, others)
    ledger.verify()


def test_gate_backup_fails_on_duplicate_keys(tmp_path: Path) -> None:
    """The plan says crm.invoices is keyed by invoice_no; a duplicate must stop the run."""
    generate(tmp_path / "src", customers=20)
    db = tmp_path / "src" / "crm.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE inv2 AS SELECT * FROM invoices")  # no primary key
        conn.execute("INSERT INTO inv2 SELECT * FROM invoices LIMIT 1")
        conn.execute("DROP TABLE invoices")
        conn.execute("ALTER TABLE inv2 RENAME TO invoices")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    check_plan(PLAN, ledger=ledger, run_id="r", actor="t")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    with SqlSource("crm", f"sqlite:///{db}", include=["invoices"]) as source:
        inventory_source(PLAN, "crm", source=source, ledger=ledger, run_id="r", actor="t")
        backup_dataset(
            PLAN,
            "crm.invoices",
            source=source,
            keys=keys,
            ledger=ledger,
            run_id="r",
            actor="t",
            vault=tmp_path / "vault",
            now=NOW,
        )
    with pytest.raises(GateFailed, match="key columns are unique"):
        gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t", output_dir=tmp_path)
    kinds = [e.kind for e in ledger.events(run_id="r")]
    assert kinds[-1] == "gate_failed"
    assert "artifact_gate_result" in kinds
    (state,) = ledger.dataset_states("r")
    assert state["state"] == "backed_up"  # never marked verified
    ledger.close()


def test_gate_backup_compares_nulls_with_the_source_profile(setup) -> None:  # noqa: ANN001
    """A manifest whose NULL profile disagrees with the restored data fails the gate, even
    when its signature is valid (e.g. a writer bug)."""
    import json

    from retirement.model.manifest import Manifest, write_signed

    ledger, keys, _, _ = setup
    result = _backup(setup, "crm.complaints")
    path = Path(result["manifest"])
    data = json.loads(path.read_text())
    data["fingerprint"]["null_counts"][0] += 1
    write_signed(Manifest.from_bytes(json.dumps(data).encode()), path, keys.signing_key())
    for state in ledger.dataset_states("r"):
        if state["dataset"] != "crm.complaints":
            _backup(setup, state["dataset"])
    with pytest.raises(GateFailed, match="NULLs per column equal the source profile") as caught:
        gate_backup(PLAN, keys=keys, ledger=ledger, run_id="r", actor="t")
    assert "differs from the manifest recorded in the ledger" in str(caught.value)
