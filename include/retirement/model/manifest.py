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
from typing import Any

from retirement.errors import IntegrityError
from retirement.model.versions import MANIFEST_FORMAT, check_version

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SourceFingerprint:
    """What the source held at backup time: exact rows, key range, order-free row digest."""

    rows: int
    row_digest: str  # computed as row_digest_method says (formats/csv.py)
    key_columns: tuple[str, ...] = ()
    key_min: str | None = None
    key_max: str | None = None
    null_counts: tuple[int, ...] = ()  # NULLs per column, in column order (the source profile)
    # "sha256-sum": sum mod 2^256 of sha256(each row's CSV line), order-independent (every
    # manifest before this field existed); "sha256-key-order": sha256 of the CSV records
    # one after the other in primary-key order, header excluded; "sha256-plaintext": sha256
    # of the whole CSV plaintext, header and records in primary-key order (the manifest's
    # plaintext_sha256 itself).
    row_digest_method: str = "sha256-sum"

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
    format_version: int = MANIFEST_FORMAT

    def __post_init__(self) -> None:
        for name in ("plaintext_sha256", "ciphertext_sha256"):
            if not _SHA256.match(getattr(self, name)):
                raise IntegrityError(f"manifest {name} is not a sha256 hex digest")
        if self.plaintext_size < 0 or self.ciphertext_size <= 0:
            raise IntegrityError("manifest sizes must be positive")
        fp = self.fingerprint
        if fp.row_digest_method == "sha256-plaintext" and fp.row_digest != self.plaintext_sha256:
            raise IntegrityError(
                "manifest row digest (sha256-plaintext) is not its plaintext_sha256: "
                "the two are one hash of the same bytes"
            )

    def to_bytes(self) -> bytes:
        data = asdict(self)
        return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "manifest") -> Manifest:
        try:
            data = json.loads(raw)
            data["format_version"] = check_version(
                data.get("format_version"), MANIFEST_FORMAT, what=where
            )
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
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"{where}: not a valid manifest: {exc}") from exc
