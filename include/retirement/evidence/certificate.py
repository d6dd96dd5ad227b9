"""Certificates of sanitization: one per deleted dataset, signed, checkable offline.

The fields follow the sanitization record of NIST SP 800-88 Rev. 2 (September 2025; it
supersedes Rev. 1 and its Appendix G): what, where (host, database, path), class, size and
individuals affected, method, tool, verification, who performed, verified and approved it
and when, adapted to data in databases, files and object stores; with the legal basis of the
deletion (PIPL Art. 47) and of a transfer (Art. 22) and a transfer's impact assessment (Art.
55-56). Format 2 added those; format 1 certificates still verify. The JSON is signed with
the key store's Ed25519 key (detached ``.sig``, as for manifests); an HTML rendering sits
beside it. Its SHA-256 is recorded in the ledger, so :func:`verify_certificate` can cross-
check a certificate against the ledger.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement import __version__
from retirement.crypto.signing import read_detached, write_detached
from retirement.errors import IntegrityError
from retirement.i18n import LANGUAGES, labeller
from retirement.model.state import DatasetState
from retirement.model.versions import CERTIFICATE_FORMAT, check_version

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from retirement.ledger.core import Ledger

_ENV = Environment(
    loader=PackageLoader("retirement.evidence", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
TOOL = f"retirement {__version__}"


def write_certificate(
    certificate: dict[str, Any],
    folder: Path,
    key: Ed25519PrivateKey,
    languages: Sequence[str] = LANGUAGES,
) -> tuple[Path, str]:
    """Write ``<id>.json`` (+ ``.sig``) and ``<id>.html`` (in ``languages``, side by side:
    retirement.i18n); return (json path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    certificate = {"format_version": CERTIFICATE_FORMAT, **certificate}
    raw = json.dumps(certificate, ensure_ascii=False, indent=1, sort_keys=True).encode()
    path = folder / f"{certificate['certificate_id']}.json"
    write_detached(path, raw, key)
    html = render_html(json.loads(raw), path.name, languages)
    path.with_suffix(".html").write_text(html, encoding="utf-8")
    return path, hashlib.sha256(raw).hexdigest()


def is_expiry(cert: dict[str, Any]) -> bool:
    """A retention-expiry certificate (the crypto-erase of a disposition's archives)."""
    return cert.get("type") == "retention_expiry" or str(cert.get("certificate_id", "")).startswith(
        "cos-expiry-"
    )


def render_html(
    certificate: dict[str, Any], name: str, languages: Sequence[str] | None = LANGUAGES
) -> str:
    """The HTML of a certificate, from its signed JSON as read back (an auditor re-renders
    it from the dossier and compares: evidence.crosscheck), with its labels in
    ``languages``; None: the English-only page of dossiers written before plans named their
    languages (``organization.languages``)."""
    if languages is None:
        return _ENV.get_template("legacy_certificate.html.j2").render(c=certificate, name=name)
    return _ENV.get_template("certificate.html.j2").render(
        c=certificate, name=name, t=labeller(languages), languages=tuple(languages)
    )


def verify_certificate(
    path: Path, public_key: Ed25519PublicKey, ledger: Ledger | None = None
) -> dict[str, Any]:
    """Check the signature and, given the ledger, that it recorded this very certificate,
    that the dataset is marked deleted and that the backup digest is the ledger's (for a
    retention-expiry certificate: its ``archive_expired`` event and the erase it names)."""
    raw = read_detached(path, public_key, what="certificate")
    cert: dict[str, Any] = json.loads(raw)
    check_version(cert.get("format_version"), CERTIFICATE_FORMAT, what=str(path))
    if ledger is None:
        return cert
    sha = hashlib.sha256(raw).hexdigest()
    if is_expiry(cert):
        _expiry_in_ledger(path, sha, ledger)
        ledger.verify()
        return cert
    run_id, dataset = cert["ledger"]["run_id"], cert["target"]["dataset"]
    issued = ledger.events_of(run_id, ("certificate_issued",), dataset=dataset)
    if not any(e.payload.get("sha256") == sha for e in issued):
        raise IntegrityError(
            f"{path}: the ledger holds no certificate_issued event for {dataset} in run "
            f"{run_id} with sha256 {sha}"
        )
    state = ledger.dataset_state(run_id, dataset)
    if state is None or state.state is not DatasetState.DELETED:
        raise IntegrityError(
            f"{path}: the ledger does not mark {dataset} deleted in run {run_id} "
            f"(state {state and state.state.value})"
        )
    backup = state.backup
    recorded = backup.ciphertext_sha256 if backup else None
    if recorded != cert["backup"]["ciphertext_sha256"]:
        raise IntegrityError(
            f"{path}: the backup digest differs from the ledger's "
            f"({cert['backup']['ciphertext_sha256']} vs {recorded})"
        )
    ledger.verify()
    return cert


def _expiry_in_ledger(path: Path, sha: str, ledger: Ledger) -> None:
    """The ledger's ``archive_expired`` event recorded this certificate, and the crypto-erase
    it names is in the chain."""
    expired = [
        e
        for e in ledger.events()
        if e.kind == "archive_expired" and e.payload.get("certificate_sha256") == sha
    ]
    if not expired:
        raise IntegrityError(
            f"{path}: the ledger holds no archive_expired event with certificate sha256 {sha}"
        )
    erase = expired[-1].payload.get("crypto_erase_event")
    erased = [e.seq for e in ledger.events() if e.kind == "crypto_erased"]
    if erase is not None and erase not in erased:
        raise IntegrityError(
            f"{path}: the crypto-erase event {erase} its archive_expired event names is not "
            "in the ledger"
        )
