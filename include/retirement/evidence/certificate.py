"""Certificates of sanitization: one per deleted dataset, signed, checkable offline.

The fields follow NIST SP 800-88 Rev. 1 Appendix G (what, where, class, method, tool,
verification, who performed and who approved, when), adapted to data in databases, files
and object stores. The JSON is signed with the key store's Ed25519 key (detached ``.sig``,
as for manifests); an HTML rendering sits beside it. Its SHA-256 is recorded in the ledger,
so :func:`verify_certificate` can cross-check a certificate against the ledger.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement import __version__
from retirement.crypto.signing import read_detached, write_detached
from retirement.errors import IntegrityError
from retirement.model.state import DatasetState
from retirement.model.versions import CERTIFICATE_FORMAT, check_version

if TYPE_CHECKING:
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
    certificate: dict[str, Any], folder: Path, key: Ed25519PrivateKey
) -> tuple[Path, str]:
    """Write ``<id>.json`` (+ ``.sig``) and ``<id>.html``; return (json path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    certificate = {"format_version": CERTIFICATE_FORMAT, **certificate}
    raw = json.dumps(certificate, ensure_ascii=False, indent=1, sort_keys=True).encode()
    path = folder / f"{certificate['certificate_id']}.json"
    write_detached(path, raw, key)
    html = _ENV.get_template("certificate.html.j2").render(c=certificate, name=path.name)
    path.with_suffix(".html").write_text(html, encoding="utf-8")
    return path, hashlib.sha256(raw).hexdigest()


def verify_certificate(
    path: Path, public_key: Ed25519PublicKey, ledger: Ledger | None = None
) -> dict[str, Any]:
    """Check the signature and, given the ledger, that it recorded this very certificate,
    that the dataset is marked deleted and that the backup digest is the ledger's."""
    raw = read_detached(path, public_key, what="certificate")
    cert: dict[str, Any] = json.loads(raw)
    check_version(cert.get("format_version"), CERTIFICATE_FORMAT, what=str(path))
    if ledger is None:
        return cert
    sha = hashlib.sha256(raw).hexdigest()
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
