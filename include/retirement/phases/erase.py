"""Crypto-erase: an archive identity destroyed, and the fact recorded in the chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger


def crypto_erase(
    plan_name: str,
    disposition: str,
    *,
    keys: KeyStore,
    ledger: Ledger,
    actor: str,
    reason: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Destroy the archive identity of (plan, disposition) and record it in the ledger.

    Every backup encrypted to it (and to no other key) can no longer be decrypted by anyone.
    """
    recipient = keys.archive_key(plan_name, disposition).recipient
    path = keys.destroy(plan_name, disposition)
    event = ledger.append(
        "crypto_erased",
        actor=actor,
        run_id=run_id,
        payload={
            "plan": plan_name,
            "disposition": disposition,
            "recipient": recipient,
            "identity_file": str(path),
            "method": "cryptographic erase (NIST SP 800-88 purge)",
            "reason": reason,
        },
    )
    return {"plan": plan_name, "disposition": disposition, "event": event.seq if event else None}
