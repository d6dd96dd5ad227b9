"""The end of retention: crypto-erase archives whose time is up, remove their copies.

Run daily by the ``retention_expiry`` DAG for every plan. An archive key (one per plan and
disposition) is destroyed only when every backup encrypted to it has passed its date (the
retention end of a ``retain`` disposition, or ``keep_backup_days`` after the backup for a
``destroy`` disposition) and the disposition has no ``legal_hold``. Before the key goes,
the delivered copies are deleted at their destinations (Object Lock refuses while it still
holds) and the vault files removed; afterwards nobody can decrypt any copy that survived
elsewhere. Each erase gets a signed certificate (method: cryptographic erase).
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.crypto.signing import read_verified
from retirement.errors import IntegrityError, KeyDestroyed, RetirementError

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.crypto.keys import KeyStore
    from retirement.destinations.base import Destination
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)


def expiry_date(extra: dict[str, Any]) -> date | None:
    """When the archive may be destroyed; None: never (permanent) or not an expiring kind."""
    if extra.get("action") == "retain":
        until = (extra.get("retention") or {}).get("retain_until")
        return None if until in (None, "permanent") else date.fromisoformat(until)
    if extra.get("action") == "destroy" and extra.get("keep_until"):
        return date.fromisoformat(extra["keep_until"])
    return None


def _archives(plan: Plan, ledger: Ledger, keys: KeyStore) -> dict[str, list[dict[str, Any]]]:
    """Every backup of the plan in the ledger, by disposition, with its manifest's terms."""
    public = load_public_key(keys.public_signing_key_pem())
    out: dict[str, list[dict[str, Any]]] = {}
    for run_id in ledger.runs_of(plan.name):
        receipts = ledger.artifacts(run_id, kind="receipt")
        for artifact in ledger.artifacts(run_id, kind="manifest"):
            path = Path(artifact["location"])
            if not path.exists():
                continue  # removed by an earlier expiry
            manifest = read_verified(path, public)
            out.setdefault(manifest.disposition, []).append(
                {
                    "run_id": run_id,
                    "manifest": manifest,
                    "path": path,
                    "expires": expiry_date(manifest.extra),
                    "copies": [
                        json.loads(r["detail"])
                        for r in receipts
                        if r["dataset"] == manifest.dataset
                        and manifest.ciphertext_file in r["location"]
                    ],
                }
            )
    return out


def expire(
    plan: Plan,
    *,
    ledger: Ledger,
    keys: KeyStore,
    today: date,
    destination_for: Callable[[str], Destination],
    output_dir: Path,
    actor: str,
) -> list[dict[str, Any]]:
    """Crypto-erase every disposition of ``plan`` whose archives have all expired."""
    from retirement.evidence.certificate import TOOL, write_certificate
    from retirement.phases.erase import crypto_erase

    done = []
    for name, archives in sorted(_archives(plan, ledger, keys).items()):
        disposition = plan.dispositions.get(name)
        dates = [a["expires"] for a in archives]
        if disposition is None or not archives or None in dates:
            continue
        last = max(d for d in dates if d is not None)
        if last > today:
            continue
        if disposition.legal_hold:
            ledger.append(
                "expiry_blocked",
                actor=actor,
                payload={
                    "plan": plan.name,
                    "disposition": name,
                    "due": last.isoformat(),
                    "legal_hold": disposition.legal_hold,
                },
            )
            log.warning(
                "%s/%s is due but under legal hold: %s", plan.name, name, disposition.legal_hold
            )
            continue
        removed = []
        for archive in archives:
            for copy in archive["copies"]:
                dest = destination_for(copy["destination"])
                try:
                    count = dest.delete(copy["name"])
                finally:
                    dest.close()
                removed.append({"location": copy["location"], "versions": count})
        try:
            event = crypto_erase(
                plan.name,
                name,
                keys=keys,
                ledger=ledger,
                actor=actor,
                reason=f"retention ended on {last.isoformat()}",
            )
        except KeyDestroyed:
            event = {"event": None}  # destroyed by an earlier attempt
        vault_files = []
        for archive in archives:
            m, path = archive["manifest"], archive["path"]
            for file in (path.parent / m.ciphertext_file, path, path.with_name(path.name + ".sig")):
                if file.exists():
                    file.unlink()
                    vault_files.append(str(file))
        cert = {
            "certificate_id": f"cos-expiry-{plan.name}-{name}-{today.isoformat()}",
            "issued_at": today.isoformat(),
            "organization": {"name": plan.organization.name, "uscc": plan.organization.uscc},
            "target": {
                "dataset": f"{plan.name}/{name}: {len(archives)} archived dataset(s)",
                "kind": "archive",
                "source_kind": "vault and destinations",
                "connection": ", ".join(
                    sorted({c["destination"] for a in archives for c in a["copies"]})
                )
                or "-",
                "data_class": "as inventoried",
                "rows": sum(a["manifest"].fingerprint.rows for a in archives),
                "bytes": sum(a["manifest"].ciphertext_size for a in archives),
            },
            "sanitization": {
                "method": "cryptographic erase",
                "technique": "the archive identity (X25519) was overwritten and removed; "
                "copies deleted at their destinations and in the vault",
                "note": f"retention ended {last.isoformat()}",
                "tool": TOOL,
            },
            "verification": {
                "method": "the identity file is gone; decryption of the archives fails",
                "result": "passed",
                "scoped_left": 0,
                "residual_identifiers": 0,
            },
            "performed_by": actor,
            "performed_at": today.isoformat(),
            "approval": {
                "approved_by": "retention rule in the plan",
                "approved_at": None,
                "auto": True,
            },
            "backup": {
                "manifest": ", ".join(str(a["path"]) for a in archives),
                "ciphertext_sha256": ", ".join(a["manifest"].ciphertext_sha256 for a in archives),
                "copy": "cryptographic erase",
                "deliveries": removed,
            },
            "ledger": {"run_id": archives[0]["run_id"]},
        }
        _check_erased(keys, plan.name, name)
        path, sha = write_certificate(
            cert, output_dir / "certificates" / "expiry", keys.signing_key()
        )
        ledger.append(
            "archive_expired",
            actor=actor,
            payload={
                "plan": plan.name,
                "disposition": name,
                "retention_ended": last.isoformat(),
                "copies_removed": removed,
                "vault_files_removed": vault_files,
                "certificate": str(path),
                "certificate_sha256": sha,
                "crypto_erase_event": event.get("event"),
            },
        )
        done.append({"disposition": name, "certificate": str(path), "copies": len(removed)})
    return done


def _check_erased(keys: KeyStore, plan: str, disposition: str) -> None:
    try:
        keys.identity(plan, disposition)
    except RetirementError:
        return
    raise IntegrityError(f"the archive identity of {plan}/{disposition} still exists")
