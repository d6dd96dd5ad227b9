"""Streaming backups: export -> CSV -> zstd -> age, hashing as it goes; signed manifests.

The format is chosen to be readable in 30 years with standard tools (docs/backup.md):
PostgreSQL's CSV dialect (UTF-8, header row, every text value quoted, NULL an empty unquoted
field, bytes as ``\\x`` hex), compressed with zstd, encrypted with age. A recipient runs
``age -d -i KEY FILE | zstd -d`` and gets a CSV that ``psql \\copy ... CSV HEADER`` loads.

One thread writes CSV into zstd and a pipe; the caller's thread runs age over the pipe into
the file: compression and encryption overlap on two cores, memory stays flat, and no
plaintext reaches the disk. The file is written under a temporary name, fsynced, and renamed
to its content address only when complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyrage
import zstandard

from retirement import __version__
from retirement.crypto.age import AGE_PROCESS_MIN, HashingWriter, encrypt_to
from retirement.crypto.signing import write_signed
from retirement.errors import BackupError, ObjectChanged
from retirement.model.manifest import Manifest
from retirement.sources.capabilities import ObjectSource
from retirement.vault.plaintext import (
    ZSTD_LEVEL,
    PlainStream,
    chunks_for,
    compress_into,
    digest_method,
    fingerprint_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from retirement.model.manifest import SourceFingerprint
    from retirement.sources.base import Named, Source
    from retirement.sources.capabilities import PinnedObject

log = logging.getLogger(__name__)

# Documents smaller than this are compressed and encrypted in memory, in the calling thread.
SMALL_OBJECT = 1 << 20

__all__ = ["BackupResult", "back_up", "digest_method", "fingerprint_now", "safe_name"]


# ---------------------------------------------------------------------- backup


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    manifest_path: Path
    ciphertext_path: Path

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.manifest.dataset,
            "rows": self.manifest.fingerprint.rows,
            "ciphertext": str(self.ciphertext_path),
            "ciphertext_sha256": self.manifest.ciphertext_sha256,
            "manifest": str(self.manifest_path),
        }


def fingerprint_now(
    source: Source,
    dataset: Named,
    kind: str,
    key_columns: tuple[str, ...] = (),
    method: str | None = None,
) -> SourceFingerprint:
    """The fingerprint a backup made now would record, without writing anything; with
    ``method``, its row digest computed that way (to compare with an older manifest's)."""
    state = PlainStream(hashlib.sha256())
    chunks, _, _ = chunks_for(source, dataset, kind, tuple(key_columns), state, method)
    for chunk in chunks:
        state.sha.update(chunk)
    return fingerprint_of(state, tuple(key_columns))


def safe_name(dataset: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)


def back_up(
    source: Source,
    dataset: Named,
    *,
    qualified: str,
    kind: str,
    plan: str,
    disposition: str,
    recipients: list[str],
    out_dir: Path,
    signing_key: Ed25519PrivateKey,
    created_at: str,
    key_columns: tuple[str, ...] = (),
    on_rows: Callable[[int], None] | None = None,
    level: int = ZSTD_LEVEL,
    extra: dict[str, Any] | None = None,
    row_digest_method: str | None = None,
) -> BackupResult:
    """Back up one dataset into ``out_dir/<plan>/<dataset>/``; return the signed manifest.
    ``row_digest_method`` None: key order where the source has a primary key (formats/csv)."""
    parsed = _recipients(qualified, recipients)
    folder = out_dir / plan / safe_name(qualified)
    folder.mkdir(parents=True, exist_ok=True)
    objects = source if isinstance(source, ObjectSource) else None
    state = PlainStream(hashlib.sha256(), on_rows)
    tmp = folder / f".{uuid.uuid4().hex}.partial"
    try:
        with objects.pinned(dataset) if objects is not None else nullcontext() as pinned:
            method = row_digest_method
            chunks, _, fmt = chunks_for(source, dataset, kind, key_columns, state, method)
            size = pinned.size if pinned is not None else None
            small = fmt == "bytes" and size is not None and size < SMALL_OBJECT
            seal = _encrypted_small if small else _encrypted
            hashed = seal(chunks, tmp, parsed, state, level, size, qualified, folder)
            columns = source.schema(dataset) if fmt == "csv" else []
            read_from = _read_from(pinned, fmt, state)
    except ObjectChanged as exc:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{qualified}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    cipher_sha = hashed.sha.hexdigest()
    final = folder / f"{cipher_sha[:16]}.{'csv' if fmt == 'csv' else 'bin'}.zst.age"
    os.replace(tmp, final)
    fingerprint = fingerprint_of(state, key_columns)
    described = {
        "plan": plan,
        "dataset": qualified,
        "disposition": disposition,
        "recipients": tuple(recipients),
        "created_at": created_at,
        "extra": {**(extra or {}), **({"source_object": read_from} if read_from else {})},
    }
    schema = tuple({"name": c.name, "type": c.type} for c in columns)
    manifest = _manifest(described, fmt, schema, fingerprint, state, hashed, final, level)
    manifest_path = _signed(manifest, final, signing_key)
    rows, size = fingerprint.rows, state.size
    log.info("backed up %s: %s rows, %s -> %s bytes", qualified, rows, size, hashed.size)
    return BackupResult(manifest, manifest_path, final)


def _manifest(
    described: dict[str, Any],
    fmt: str,
    columns: tuple[dict[str, str], ...],
    fingerprint: SourceFingerprint,
    state: PlainStream,
    hashed: HashingWriter,
    final: Path,
    level: int,
) -> Manifest:
    """The manifest of a backup written to ``final``: what it holds and how it was made."""
    return Manifest(
        format=fmt,
        columns=columns,
        fingerprint=fingerprint,
        plaintext_sha256=state.sha.hexdigest(),
        plaintext_size=state.size,
        ciphertext_sha256=hashed.sha.hexdigest(),
        ciphertext_size=hashed.size,
        ciphertext_file=final.name,
        compression=f"zstd level {level}",
        encryption="age v1 (X25519)",
        tool=f"retirement {__version__}",
        **described,
    )


def _recipients(qualified: str, recipients: list[str]) -> list[Any]:
    """The age recipients to encrypt to, parsed; BackupError when there is none or one is
    not an X25519 public key."""
    try:
        parsed = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:  # pyrage's RecipientError
        raise BackupError(f"{qualified}: a recipient is not an age X25519 public key") from exc
    if not parsed:
        raise BackupError(f"{qualified}: no recipient to encrypt to")
    return parsed


def _whole(chunks: Iterator[bytes], known: int, qualified: str) -> bytearray:
    """The chunks of a document of ``known`` bytes, joined; ObjectChanged when there are
    more (it grew while read), BackupError naming the dataset when reading fails."""
    plain = bytearray()
    try:
        for chunk in chunks:
            plain += chunk
            if len(plain) > known:
                break
    except ObjectChanged:
        raise
    except Exception as exc:
        raise BackupError(f"{qualified}: reading the source failed: {exc}") from exc
    if len(plain) > known:
        raise ObjectChanged(f"it grew past {known} bytes while it was read")
    return plain


def _encrypted_small(
    chunks: Iterator[bytes],
    tmp: Path,
    parsed: list[Any],
    state: PlainStream,
    level: int,
    known: int | None,
    qualified: str,
    folder: Path,
) -> HashingWriter:
    """A document under SMALL_OBJECT bytes, compressed and encrypted in memory in this
    thread: a thread, a pipe and zstd's workers cost more than the work on a small file.
    The same age and zstd formats; ObjectChanged when it grows past its size while read."""
    plain = _whole(chunks, known or 0, qualified)
    state.sha.update(plain)
    state.size = len(plain)
    try:
        sealed = pyrage.encrypt(zstandard.ZstdCompressor(level=level).compress(plain), parsed)
        with tmp.open("wb") as out:
            hashed = HashingWriter(out)
            hashed.write(sealed)
            out.flush()
            os.fsync(out.fileno())
    except (pyrage.EncryptError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise _write_failed(qualified, folder, exc) from exc
    return hashed


def _write_failed(qualified: str, folder: Path, exc: BaseException) -> BackupError:
    return BackupError(
        f"{qualified}: writing the backup to {folder} failed ({exc}); "
        "nothing was kept: free space or fix the folder, then re-run"
    )


def _encrypted(
    chunks: Iterator[bytes],
    tmp: Path,
    parsed: list[Any],
    state: PlainStream,
    level: int,
    known: int | None,
    qualified: str,
    folder: Path,
) -> HashingWriter:
    """Compress ``chunks`` in one thread and encrypt them into ``tmp`` in this one (the size
    of an object, ``known``, tells encrypt_to how); what ``encrypt_to`` hashed of the
    ciphertext. Nothing is left behind when either side fails."""
    read_fd, write_fd = os.pipe()
    producer = threading.Thread(
        target=compress_into,
        args=(chunks, write_fd, state, level, known is not None and known < AGE_PROCESS_MIN),
        name=f"backup-{qualified}",
        daemon=True,
    )
    producer.start()
    try:
        hashed = encrypt_to(read_fd, tmp, parsed, size=known)
    except (pyrage.EncryptError, OSError) as exc:
        producer.join(timeout=30)
        tmp.unlink(missing_ok=True)
        raise _write_failed(qualified, folder, exc) from exc
    except BaseException:
        producer.join(timeout=30)
        tmp.unlink(missing_ok=True)
        raise
    producer.join()
    if isinstance(state.error, ObjectChanged):
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{qualified}: {state.error}") from state.error
    if state.error is not None:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{qualified}: reading the source failed: {state.error}") from state.error
    return hashed


def _read_from(
    pinned: PinnedObject | None, fmt: str, state: PlainStream
) -> dict[str, object] | None:
    """What the backup records of the object it read: the state of the very bytes read (a
    document's are its plaintext); ObjectChanged when the reads did not see one content."""
    if pinned is None:
        return None
    return pinned.state((state.size, state.sha.hexdigest()) if fmt == "bytes" else None)


def _signed(manifest: Manifest, final: Path, signing_key: Ed25519PrivateKey) -> Path:
    """Write the signed manifest beside the backup; if that fails, remove the backup too."""
    manifest_path = final.with_name(final.name + ".manifest.json")
    try:
        write_signed(manifest, manifest_path, signing_key)
    except OSError as exc:
        for leftover in (
            final,
            manifest_path,
            manifest_path.with_name(manifest_path.name + ".sig"),
        ):
            leftover.unlink(missing_ok=True)
        raise BackupError(
            f"{manifest.dataset}: writing the manifest {manifest_path} failed "
            f"({exc.strerror or exc}); the backup was removed, nothing was kept: free space in "
            "the vault and re-run"
        ) from exc
    return manifest_path
