"""Detached Ed25519 signatures: ``FILE`` beside ``FILE.sig``, checkable with openssl.

An auditor verifies with ``openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin
-in FILE -sigfile FILE.sig``; the library reads a signed file only through ``read_detached``
or ``read_verified``, so an unsigned or altered file is an IntegrityError, never data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature

from retirement.errors import IntegrityError
from retirement.model.manifest import Manifest

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


def write_detached(path: Path, raw: bytes, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    """Write ``path`` and ``path.sig``, the detached Ed25519 signature of its bytes (it
    verifies with ``openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin``)."""
    path.write_bytes(raw)
    sig = path.with_name(path.name + ".sig")
    sig.write_bytes(key.sign(raw))
    return path, sig


def read_detached(path: Path, public_key: Ed25519PublicKey, *, what: str = "file") -> bytes:
    """The bytes of ``path`` if ``path.sig`` verifies; IntegrityError otherwise."""
    sig = path.with_name(path.name + ".sig")
    try:
        raw, signature = path.read_bytes(), sig.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{exc.filename}: cannot read: {exc.strerror}") from exc
    try:
        public_key.verify(signature, raw)
    except InvalidSignature as exc:
        raise IntegrityError(
            f"{path}: the signature in {sig.name} does not verify: the "
            f"{what} was changed or signed by another key"
        ) from exc
    return raw


def write_signed(manifest: Manifest, path: Path, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    """Write ``path`` and ``path.sig`` (the detached Ed25519 signature of its bytes)."""
    return write_detached(path, manifest.to_bytes(), key)


def read_verified(path: Path, public_key: Ed25519PublicKey) -> Manifest:
    """Read a manifest whose detached signature verifies; raise IntegrityError otherwise."""
    raw = read_detached(path, public_key, what="manifest")
    return Manifest.from_bytes(raw, where=str(path))
