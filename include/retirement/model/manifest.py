"""The manifest of a backup: what was backed up, how, and digests to check it; Ed25519-signed.

The signature is detached (``<manifest>.sig``, 64 raw bytes) over the manifest file's exact
bytes, so it verifies with standard tools:

    openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin \\
        -in X.manifest.json -sigfile X.manifest.json.sig
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from retirement.errors import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SourceFingerprint:
    """What the source held at backup time: exact rows, key range, order-free row digest."""

    rows: int
    row_digest: str  # sum mod 2^256 of sha256(each row's CSV line): order-independent
    key_columns: tuple[str, ...] = ()
    key_min: str | None = None
    key_max: str | None = None
    null_counts: tuple[int, ...] = ()  # NULLs per column, in column order (the source profile)

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise IntegrityError(f"a row count cannot be negative: {self.rows}")
        if not _SHA256.match(self.row_digest):
            raise IntegrityError(f"not a sha256 hex digest: {self.row_digest!r}")


@dataclass(frozen=True)
class Manifest:
    plan: str
    dataset: str
    disposition: str
    format: str  # "csv" (RFC 4180, UTF-8, header row) or "bytes" (a document as it was)
    columns: tuple[dict[str, str], ...]
    fingerprint: SourceFingerprint
    plaintext_sha256: str
    plaintext_size: int
    ciphertext_sha256: str
    ciphertext_size: int
    ciphertext_file: str  # file name, beside the manifest
    compression: str
    encryption: str
    recipients: tuple[str, ...]
    created_at: str
    tool: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("plaintext_sha256", "ciphertext_sha256"):
            if not _SHA256.match(getattr(self, name)):
                raise IntegrityError(f"manifest {name} is not a sha256 hex digest")
        if self.plaintext_size < 0 or self.ciphertext_size <= 0:
            raise IntegrityError("manifest sizes must be positive")

    def to_bytes(self) -> bytes:
        data = asdict(self)
        return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "manifest") -> Manifest:
        try:
            data = json.loads(raw)
            fp_data = data.pop("fingerprint")
            fp = SourceFingerprint(
                **{
                    **fp_data,
                    "key_columns": tuple(fp_data["key_columns"]),
                    "null_counts": tuple(fp_data.get("null_counts", ())),
                }
            )
            return cls(
                **{
                    **data,
                    "fingerprint": fp,
                    "columns": tuple(data["columns"]),
                    "recipients": tuple(data["recipients"]),
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: not a valid manifest: {exc}") from exc


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
