"""Verify and restore backups: signature, ciphertext digest, decryption, recount, row digest.

Everything streams: decryption runs in a thread writing into a pipe, decompression and the
checks read from it. Any mismatch raises :class:`IntegrityError` naming what differs.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any

from retirement.crypto.age import decrypted_chunks
from retirement.crypto.signing import read_verified
from retirement.errors import IntegrityError
from retirement.formats.csv import ORDERED_METHODS, PLAINTEXT_METHOD, csv_records, physical_lines
from retirement.formats.csv import row_digest as new_row_digest
from retirement.formats.digests import file_sha256
from retirement.vault.verify_blocks import BlockProfile, KeysOutOfOrder, profile_blocks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.model.manifest import Manifest


@dataclass(frozen=True)
class VerifyReport:
    manifest: Manifest
    rows: int
    row_digest: str
    plaintext_sha256: str
    plaintext_size: int
    null_counts: tuple[int, ...] = ()  # NULLs per column in the restored stream
    key_nulls: int = 0
    key_duplicates: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.manifest.dataset,
            "rows": self.rows,
            "row_digest": self.row_digest,
            "plaintext_sha256": self.plaintext_sha256,
            "ciphertext_sha256": self.manifest.ciphertext_sha256,
            "null_counts": list(self.null_counts),
            "key_nulls": self.key_nulls,
            "key_duplicates": self.key_duplicates,
            "verified": True,
        }


# One field of a CSV record: quoted (quotes doubled inside, newlines allowed) or bare.
_FIELD = re.compile(rb'(?:^|,)("[^"]*(?:""[^"]*)*"|[^,\n]*)')


class _Profile:
    """NULL counts per column and key uniqueness over restored CSV records, memory bounded:
    keys are kept as 8-byte hashes in a compact array, sorted once at the end."""

    def __init__(self, columns: int, key_index: list[int]) -> None:
        self.nulls = [0] * columns
        self.key_index = key_index  # every column of the key: uniqueness is of the whole key
        self.key_nulls = 0
        self._keys = array("Q")

    def add(self, record: bytes) -> None:
        fields = _FIELD.findall(record.rstrip(b"\n"))
        for i, field in enumerate(fields):
            if not field:
                self.nulls[i] += 1
        if self.key_index:
            parts = [fields[i] for i in self.key_index]
            if not all(parts):
                self.key_nulls += 1
            else:
                digest = hashlib.blake2b(b"\x1f".join(parts), digest_size=8).digest()
                self._keys.append(int.from_bytes(digest, "big"))

    def duplicates(self) -> int:
        import numpy as np

        keys = np.sort(np.frombuffer(self._keys, dtype=np.uint64))
        return int(np.count_nonzero(keys[1:] == keys[:-1])) if len(keys) > 1 else 0


def verify_backup(
    manifest_path: Path,
    public_key: Ed25519PublicKey,
    identities: list[Any],
    *,
    on_bytes: Callable[[int], None] | None = None,
    sink: Callable[[bytes], object] | None = None,
) -> VerifyReport:
    """Check signature and ciphertext digest, decrypt, recount and recompute the row digest.

    ``sink`` receives the plaintext (for a restore); ``on_bytes`` reports progress.
    """
    manifest = read_verified(manifest_path, public_key)
    cipher = manifest_path.parent / manifest.ciphertext_file
    if not cipher.exists():
        raise IntegrityError(f"{cipher}: the backup named by {manifest_path.name} is missing")
    size, sha = file_sha256(cipher)
    if (size, sha) != (manifest.ciphertext_size, manifest.ciphertext_sha256):
        raise IntegrityError(
            f"{cipher}: ciphertext is {size} bytes with sha256 {sha}; the "
            f"manifest says {manifest.ciphertext_size} bytes, "
            f"{manifest.ciphertext_sha256} (altered or truncated)"
        )
    # A restore's plaintext goes to ``sink`` once: it keeps every key from the start. Else
    # the flat duplicate check first, and only keys out of order read the backup again.
    if sink is not None:
        return _decrypt_and_check(manifest, cipher, identities, on_bytes, sink, keep_keys=True)
    try:
        return _decrypt_and_check(manifest, cipher, identities, on_bytes, None, keep_keys=False)
    except KeysOutOfOrder:
        return _decrypt_and_check(manifest, cipher, identities, on_bytes, None, keep_keys=True)


def _decrypt_and_check(
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    on_bytes: Callable[[int], None] | None,
    sink: Callable[[bytes], object] | None,
    *,
    keep_keys: bool,
) -> VerifyReport:
    plain_sha, counter = hashlib.sha256(), [0]
    chunks = decrypted_chunks(cipher, identities)
    if on_bytes is not None or sink is not None:
        chunks = _tap(chunks, on_bytes, sink)
    if manifest.format == "csv":
        got = _read_csv(manifest, chunks, plain_sha, counter, keep_keys=keep_keys)
    else:
        for _ in physical_lines(chunks, plain_sha, counter):
            pass
        got = BlockProfile(1, plain_sha.hexdigest(), (), 0, 0)
    report = VerifyReport(
        manifest,
        got.rows,
        got.row_digest,
        plain_sha.hexdigest(),
        counter[0],
        got.nulls,
        got.key_nulls,
        got.key_duplicates,
    )
    _compare(manifest, report)
    return report


def _read_csv(
    manifest: Manifest,
    chunks: Iterator[bytes],
    plain_sha: Any,
    counter: list[int],
    *,
    keep_keys: bool,
) -> BlockProfile:
    """Count, profile and digest the records: in blocks for a key-order digest, else one
    record at a time (the order-free sum needs each record's own hash)."""
    names = [c["name"] for c in manifest.columns]
    key_index = [names.index(k) for k in manifest.fingerprint.key_columns if k in names]
    method = manifest.fingerprint.row_digest_method
    if method in ORDERED_METHODS:
        own = method != PLAINTEXT_METHOD  # else the row digest is the plaintext's SHA-256
        got = profile_blocks(
            chunks, names, key_index, plain_sha, counter, keep_keys=keep_keys, records=own
        )
        return got if own else replace(got, row_digest=plain_sha.hexdigest())
    profile = _Profile(len(names), key_index)
    records = csv_records(physical_lines(chunks, plain_sha, counter))
    next(records, None)  # the header
    digest = new_row_digest(method)
    for record in records:
        digest.add(record)
        profile.add(record)
    return BlockProfile(
        digest.rows,
        digest.hexdigest(),
        tuple(profile.nulls),
        profile.key_nulls,
        profile.duplicates(),
    )


def _tap(
    chunks: Iterator[bytes],
    on_bytes: Callable[[int], None] | None,
    sink: Callable[[bytes], object] | None,
) -> Iterator[bytes]:
    for chunk in chunks:
        if sink is not None:
            sink(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk


def _compare(manifest: Manifest, got: VerifyReport) -> None:
    checks = [
        ("plaintext sha256", manifest.plaintext_sha256, got.plaintext_sha256),
        ("plaintext size", manifest.plaintext_size, got.plaintext_size),
        ("row count", manifest.fingerprint.rows, got.rows),
        ("row digest", manifest.fingerprint.row_digest, got.row_digest),
    ]
    wrong = [
        f"{what}: manifest {want}, restored {have}" for what, want, have in checks if want != have
    ]
    if wrong:
        raise IntegrityError(
            f"{manifest.dataset}: the restored data differs from the manifest: {'; '.join(wrong)}"
        )


def restore_to_file(
    manifest_path: Path,
    target: IO[bytes],
    public_key: Ed25519PublicKey,
    identities: list[Any],
    on_bytes: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify while writing the plaintext (CSV or the document) to ``target``."""
    return verify_backup(
        manifest_path, public_key, identities, on_bytes=on_bytes, sink=target.write
    )
