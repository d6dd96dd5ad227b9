"""An archive identity's life in the key store: made on first use, opened, destroyed, and the
exact refusal each step gives afterwards (the retention-expiry task and the restore command
show these messages to people)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retirement.crypto.keys import KeyStore
from retirement.errors import KeyDestroyed, KeyStoreError


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "master.key"))


def test_never_made(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError) as opened:
        store.identity("demo", "archive")
    assert str(opened.value) == "no archive identity for demo/archive (never made)"
    with pytest.raises(KeyStoreError) as destroyed:
        store.destroy("demo", "archive")
    assert str(destroyed.value) == "no archive identity for demo/archive to destroy"
    assert not isinstance(opened.value, KeyDestroyed)
    assert not isinstance(destroyed.value, KeyDestroyed)


def test_made_opened_and_destroyed(store: KeyStore) -> None:
    key = store.archive_key("demo", "archive")
    assert store.archive_key("demo", "archive") == key  # made once
    assert str(store.identity("demo", "archive").to_public()) == key.recipient
    secret = store.destroy("demo", "archive")
    assert not secret.exists()
    assert (store.root / "demo" / "archive.recipient").read_text() == f"{key.recipient}\n"
    said = "the archive identity of demo/archive was destroyed"
    with pytest.raises(KeyDestroyed) as made:
        store.archive_key("demo", "archive")
    assert str(made.value) == f"{said} (crypto-erased): no new archive can be made for it"
    with pytest.raises(KeyDestroyed) as opened:
        store.identity("demo", "archive")
    assert str(opened.value) == (
        f"{said} (crypto-erased): the archives encrypted to it cannot be decrypted"
    )
    with pytest.raises(KeyDestroyed) as again:
        store.destroy("demo", "archive")
    assert str(again.value) == said


@pytest.mark.parametrize("plan", ["Demo", "../x", "", "a" * 64])
def test_names_that_are_no_plan_names_are_refused(store: KeyStore, plan: str) -> None:
    with pytest.raises(KeyStoreError, match="not a plan or disposition name"):
        store.archive_key(plan, "archive")
    assert not store.root.exists() or not any(store.root.iterdir())


def test_the_pseudonym_key_is_per_plan_stable_and_stored_encrypted(tmp_path: Path) -> None:
    master = KeyStore.new_master_key(tmp_path / "m.key")
    keys = KeyStore(tmp_path / "keys", master)
    first = keys.pseudonym_key("demo")
    assert len(first) == 32
    assert keys.pseudonym_key("demo") == first
    assert KeyStore(tmp_path / "keys", master).pseudonym_key("demo") == first
    assert keys.pseudonym_key("other") != first
    stored = (tmp_path / "keys" / "demo" / "pseudonym.key.age").read_bytes()
    assert first not in stored
    assert stored.startswith(b"age-encryption.org/v1")
