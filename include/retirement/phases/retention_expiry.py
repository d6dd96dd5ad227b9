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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Expiry:
    """One disposition of a plan whose archives are all past their date."""

    plan: Plan
    name: str
    archives: list[dict[str, Any]]
    last: date  # the latest of their dates
    today: date
    actor: str


def expire(
    plan: Plan,
    *,
    ledger: Ledger,
    keys: KeyStore,
    today: date,
    destination_for: Callable[[str], Destination],
    output_dir: Path,
    actor: str,
    rehearse: bool = False,
) -> list[dict[str, Any]]:
    """Crypto-erase every disposition of ``plan`` whose archives have all expired.

    ``rehearse``: only say what would happen on ``today`` (which dispositions would be
    erased, which a legal hold keeps, how many copies would go); nothing is changed."""
    done = []
    for name, archives in sorted(_archives(plan, ledger, keys).items()):
        due = _due(plan, name, archives, today, actor)
        if due is None:
            continue
        if rehearse:
            done.append(_rehearsal(due))
            continue
        if _held(due, ledger):
            continue
        removed = _remove_copies(due, destination_for)
        event = _erase_key(due, keys, ledger)
        vault_files = _remove_vault_files(due)
        _check_erased(keys, plan.name, name)
        path, sha = _certify(due, removed, keys, output_dir)
        ledger.append(
            "archive_expired",
            actor=actor,
            payload={
                "plan": plan.name,
                "disposition": name,
                "retention_ended": due.last.isoformat(),
                "copies_removed": removed,
                "vault_files_removed": vault_files,
                "certificate": str(path),
                "certificate_sha256": sha,
                "crypto_erase_event": event,
            },
        )
        done.append({"disposition": name, "certificate": str(path), "copies": len(removed)})
    return done


def _due(
    plan: Plan, name: str, archives: list[dict[str, Any]], today: date, actor: str
) -> _Expiry | None:
    """The disposition's expiry if every archive of it has a date and all have passed."""
    dates = [a["expires"] for a in archives]
    if plan.dispositions.get(name) is None or not archives or None in dates:
        return None
    last = max(d for d in dates if d is not None)
    return None if last > today else _Expiry(plan, name, archives, last, today, actor)


def _rehearsal(due: _Expiry) -> dict[str, Any]:
    hold = due.plan.dispositions[due.name].legal_hold
    return {
        "disposition": due.name,
        "rehearsal": True,
        "as_of": due.today.isoformat(),
        "retention_ended": due.last.isoformat(),
        "would": f"be kept: legal hold ({hold})" if hold else "be crypto-erased",
        "archives": len(due.archives),
        "copies": sum(len(a["copies"]) for a in due.archives),
    }


def _held(due: _Expiry, ledger: Ledger) -> bool:
    """A legal hold keeps a due archive: recorded (``expiry_blocked``) and logged."""
    hold = due.plan.dispositions[due.name].legal_hold
    if not hold:
        return False
    ledger.append(
        "expiry_blocked",
        actor=due.actor,
        payload={
            "plan": due.plan.name,
            "disposition": due.name,
            "due": due.last.isoformat(),
            "legal_hold": hold,
        },
    )
    log.warning("%s/%s is due but under legal hold: %s", due.plan.name, due.name, hold)
    return True


def _remove_copies(
    due: _Expiry, destination_for: Callable[[str], Destination]
) -> list[dict[str, Any]]:
    """Every delivered copy deleted at its destination (Object Lock refuses while it holds)."""
    removed = []
    for archive in due.archives:
        for copy in archive["copies"]:
            dest = destination_for(copy["destination"])
            try:
                count = dest.delete(copy["name"])
            finally:
                dest.close()
            removed.append({"location": copy["location"], "versions": count})
    return removed


def _erase_key(due: _Expiry, keys: KeyStore, ledger: Ledger) -> Any:
    """The archive identity destroyed (the crypto-erase); its event, or None if an earlier
    attempt destroyed it already."""
    from retirement.phases.erase import crypto_erase

    try:
        event = crypto_erase(
            due.plan.name,
            due.name,
            keys=keys,
            ledger=ledger,
            actor=due.actor,
            reason=f"retention ended on {due.last.isoformat()}",
        )
    except KeyDestroyed:
        return None
    return event.get("event")


def _remove_vault_files(due: _Expiry) -> list[str]:
    """The age files, manifests and signatures of the archives removed from the vault."""
    gone = []
    for archive in due.archives:
        m, path = archive["manifest"], archive["path"]
        for file in (path.parent / m.ciphertext_file, path, path.with_name(path.name + ".sig")):
            if file.exists():
                file.unlink()
                gone.append(str(file))
    return gone


def _certify(
    due: _Expiry, removed: list[dict[str, Any]], keys: KeyStore, output_dir: Path
) -> tuple[Path, str]:
    """The signed certificate of the crypto-erase (NIST SP 800-88 purge)."""
    from retirement.evidence.certificate import write_certificate

    cert = _certificate(due, removed)
    folder = output_dir / "certificates" / "expiry"
    languages = due.plan.organization.languages
    return write_certificate(cert, folder, keys.signing_key(), languages)


def _certificate(due: _Expiry, removed: list[dict[str, Any]]) -> dict[str, Any]:
    from retirement.evidence.certificate import TOOL
    from retirement.phases.certify import STANDARD, person

    plan, archives = due.plan, due.archives
    sanitizer, retention = plan.sanitization, plan.dispositions[due.name].retention
    return {
        "certificate_id": f"cos-expiry-{plan.name}-{due.name}-{due.today.isoformat()}",
        "type": "retention_expiry",
        "standard": STANDARD,
        "issued_at": due.today.isoformat(),
        "organization": {
            "name": plan.organization.name,
            "uscc": plan.organization.uscc,
            "dpo": person(plan.organization.dpo),
        },
        "target": _target(due),
        "legal_basis": {"retention": retention.legal_basis if retention else None},
        "sanitization": {
            "method": "cryptographic erase",
            "technique": "the archive identity (X25519) was overwritten and removed; "
            "copies deleted at their destinations and in the vault",
            "note": f"retention ended {due.last.isoformat()}",
            "tool": TOOL,
            "organization": sanitizer.organization if sanitizer else None,
        },
        "verification": {
            "method": "the identity file is gone; decryption of the archives fails",
            "result": "passed",
            "verified_at": due.today.isoformat(),
            "verified_by": person(sanitizer.verified_by if sanitizer else None, task=due.actor),
            "scoped_left": 0,
            "residual_identifiers": 0,
        },
        "performed_by": person(sanitizer.performed_by if sanitizer else None, task=due.actor),
        "performed_at": due.today.isoformat(),
        "approval": {
            "approved_by": "retention rule in the plan",
            "approver": None,
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


def _target(due: _Expiry) -> dict[str, Any]:
    archives = due.archives
    copies = sorted({c["destination"] for a in archives for c in a["copies"]})
    return {
        "dataset": f"{due.plan.name}/{due.name}: {len(archives)} archived dataset(s)",
        "datasets": sorted(a["manifest"].dataset for a in archives),
        "kind": "archive",
        "source_kind": "vault and destinations",
        "connection": ", ".join(copies) or "-",
        "location": {"destinations": copies},
        "data_class": "as inventoried",
        "rows": sum(a["manifest"].fingerprint.rows for a in archives),
        "bytes": sum(a["manifest"].ciphertext_size for a in archives),
        "bytes_basis": "the encrypted archives",
    }


def _check_erased(keys: KeyStore, plan: str, disposition: str) -> None:
    try:
        keys.identity(plan, disposition)
    except RetirementError:
        return
    raise IntegrityError(f"the archive identity of {plan}/{disposition} still exists")
