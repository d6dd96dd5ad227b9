"""A small demo company and one verified backup of its customers, for CLI and restore tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

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
