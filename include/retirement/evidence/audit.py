"""``retirement audit``: everything a closure dossier claims, checked offline against the
published signing key (docs/audit.md): the signed list of digests and every file in it,
every manifest and certificate signature, and the run's part of the hash chain."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from retirement.crypto.signing import read_detached
from retirement.errors import IntegrityError
from retirement.evidence.chain_export import RunEvent, audit_run_chain, audit_whole_chain
from retirement.model.versions import CERTIFICATE_FORMAT, DOSSIER_FORMAT, check_version

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNED = (".manifest.json", ".json")  # files that come with a detached .sig
# SHA256SUMS, its signature and its RFC 3161 time-stamp (request and reply): about the list
UNLISTED = ("SHA256SUMS", "SHA256SUMS.sig", "SHA256SUMS.tsq", "SHA256SUMS.tsr")


def trusted_key(
    folder: Path, *, public_key_pem: bytes | None = None, key_fingerprint: str | None = None
) -> Ed25519PublicKey:
    """The key to audit ``folder`` with: the published public key, or the dossier's own
    signing.pub.pem when its fingerprint (crypto.keys.fingerprint) is the published one;
    IntegrityError when it is not (the dossier was signed by another key)."""
    from retirement.crypto.keys import fingerprint, load_public_key

    if public_key_pem is not None:
        return load_public_key(public_key_pem)
    if key_fingerprint is None:
        raise ValueError("give the published public key or its fingerprint")
    wanted = key_fingerprint.strip()
    if not wanted.startswith("SHA256:") or len(wanted) != 71:
        raise ValueError(f"not a key fingerprint: {wanted!r} (expected SHA256:<64 hex>)")
    try:
        own = load_public_key((folder / "signing.pub.pem").read_bytes())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{folder}/signing.pub.pem: not a readable public key: {exc}") from exc
    if fingerprint(own).lower() != wanted.lower():
        raise IntegrityError(
            f"signing.pub.pem in the dossier is key {fingerprint(own)}, not the published "
            f"{wanted}: the dossier was signed by another key"
        )
    return own


def audit(folder: Path, public_key: Ed25519PublicKey, *, tsa_ca: Path | None = None) -> list[str]:
    """Every problem found in a dossier (empty: it verifies). ``public_key``: the trust
    anchor published elsewhere (trusted_key), never the copy inside the dossier alone;
    ``tsa_ca``: the time-stamping authority's CA certificate, for a dossier with RFC 3161
    tokens (evidence.anchors)."""
    try:
        sums = read_detached(folder / "SHA256SUMS", public_key, what="list of digests").decode()
    except IntegrityError as exc:
        return [str(exc)]
    problems, listed = _check_listing(folder, sums)
    for name in sorted(listed):
        path = folder / name
        if (
            path.is_file()
            and path.name.endswith(SIGNED)
            and path.parent.name
            in (
                "manifests",
                "certificates",
            )
        ):
            try:
                _read_signed(path, public_key)
            except IntegrityError as exc:
                problems.append(str(exc))
    problems += _head_signature(folder, public_key)
    hashes: dict[int, str] = {}
    chain_problems, events = audit_chain(folder, hashes)
    if chain_problems or not events:
        return problems + chain_problems
    from retirement.evidence.anchors import audit_timestamps
    from retirement.evidence.crosscheck import crosscheck

    head = json.loads((folder / "head.json").read_text())
    problems += audit_timestamps(folder, head, events, hashes, tsa_ca)
    return problems + crosscheck(folder, head["run_id"], events)


def _head_signature(folder: Path, key: Ed25519PublicKey) -> list[str]:
    """head.json.sig (dossiers sealed before it have none), what witnesses were sent."""
    if not (folder / "head.json.sig").is_file():
        return []
    try:
        read_detached(folder / "head.json", key, what="head")
    except IntegrityError as exc:
        return [str(exc)]
    return []


def _check_listing(folder: Path, sums: str) -> tuple[list[str], set[str]]:
    """Every listed file is there with its digest; every file there is listed."""
    problems: list[str] = []
    listed = set()
    for line in sums.splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: sha256 differs from SHA256SUMS (altered)")
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if not path.is_dir() and name not in listed and name not in UNLISTED:
            problems.append(f"{name}: not listed in SHA256SUMS (added later)")
    return problems, listed


def _read_signed(path: Path, key: Ed25519PublicKey) -> None:
    """A manifest or certificate of the dossier: its signature, and a format this reads."""
    from retirement.model.manifest import Manifest

    raw = read_detached(path, key, what=path.parent.name[:-1])
    if path.parent.name == "manifests":
        Manifest.from_bytes(raw, where=str(path))
        return
    try:
        found = json.loads(raw).get("format_version")
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(f"{path}: not a certificate: {exc}") from exc
    check_version(found, CERTIFICATE_FORMAT, what=str(path))


def audit_chain(
    folder: Path, hashes: dict[int, str] | None = None
) -> tuple[list[str], list[RunEvent]]:
    """head.json's format, then the chain of ledger.jsonl up to its head: the problems and
    the run's events (none from a dossier of format 1)."""
    try:
        head = json.loads((folder / "head.json").read_text())
        version = check_version(head.get("format_version"), DOSSIER_FORMAT, what="head.json")
    except (OSError, ValueError, AttributeError) as exc:
        return [f"head.json: not readable: {exc}"], []
    except IntegrityError as exc:
        return [str(exc)], []
    if version == 1:  # ledger.jsonl held the whole chain
        return audit_whole_chain(folder, head), []
    return audit_run_chain(folder, head, hashes)
