"""A small demo company and one verified backup of its customers, for CLI and restore tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.crypto.keys import KeyStore
    from retirement.model.manifest import Manifest
    from retirement.vault.write import BackupResult


def demo_company(tmp_path: Path) -> Path:
    from retirement.demo import generate

    root = tmp_path / "sources"
    generate(root, customers=40)
    return root


def backed_up(tmp_path: Path) -> tuple[BackupResult, Path]:
    import pyrage

    from retirement.crypto.keys import KeyStore
    from retirement.sources.sql import SqlSource
    from retirement.vault.write import back_up

    root = demo_company(tmp_path)
    master_file = tmp_path / "keys" / "master.key"
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(master_file))
    recipient = pyrage.x25519.Identity.generate()
    (tmp_path / "successor.key").write_text(f"# successor\n{recipient}\n")
    with SqlSource("crm", f"sqlite:///{root / 'crm.sqlite'}") as source:
        result = back_up(
            source,
            "customers",
            qualified="crm.customers",
            kind="table",
            plan="demo",
            disposition="hand_over",
            recipients=[
                keys.archive_key("demo", "hand_over").recipient,
                str(recipient.to_public()),
            ],
            out_dir=tmp_path / "vault",
            signing_key=keys.signing_key(),
            created_at="2026-11-23T00:00:00+00:00",
        )
    return result, master_file


def table_backup(
    source: Any,
    name: str,
    keys: KeyStore,
    out: Path,
    key: tuple[str, ...],
    kind: str = "table",
    method: str | None = None,
) -> tuple[Manifest, Path]:
    """One table backed up for the plan "demo" (disposition erase): its manifest and age file."""
    result = back_up_table(source, name, keys, out, key, kind, method)
    return result.manifest, result.ciphertext_path


def back_up_table(
    source: Any,
    name: str,
    keys: KeyStore,
    out: Path,
    key: tuple[str, ...] = (),
    kind: str = "table",
    method: str | None = None,
) -> BackupResult:
    from retirement.vault.write import back_up

    return back_up(
        source,
        name,
        qualified=str(source.id_of(name)),
        kind=kind,
        plan="demo",
        disposition="erase",
        recipients=[keys.archive_key("demo", "erase").recipient],
        out_dir=out,
        signing_key=keys.signing_key(),
        created_at="2026-11-23T00:00:00Z",
        key_columns=key,
        row_digest_method=method,
    )
