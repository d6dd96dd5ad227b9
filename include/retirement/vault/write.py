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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyrage
import zstandard

from retirement import __version__
from retirement.crypto.age import encrypt_to
from retirement.crypto.signing import write_signed
from retirement.errors import BackupError
from retirement.formats.csv import RowDigest, csv_field, csv_line
from retirement.formats.digests import CHUNK
from retirement.model.manifest import Manifest, SourceFingerprint
from retirement.sources.base import ObjectSource

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from retirement.sources.base import Named, Source

log = logging.getLogger(__name__)

ZSTD_LEVEL = 1
ZSTD_THREADS = -1  # zstd's own worker threads, one per core: compression leaves the GIL


# ---------------------------------------------------------------------- CSV


# ---------------------------------------------------------------------- streams


@dataclass
class _Plain:
    sha: Any
    size: int = 0
    digest: RowDigest | None = None
    key_min: Any = None
    key_max: Any = None
    null_counts: list[int] | None = None
    error: BaseException | None = None


def _table_chunks(
    source: Source,
    dataset: Named,
    columns: list[str],
    key_index: int | None,
    state: _Plain,
    on_rows: Callable[[int], None] | None,
) -> Iterator[bytes]:
    state.digest = RowDigest()
    state.null_counts = nulls = [0] * len(columns)
    yield (",".join(csv_field(c) for c in columns) + "\n").encode("utf-8")
    for batch in source.batches(dataset):
        for i, values in enumerate(zip(*batch, strict=True)):
            nulls[i] += values.count(None)
        lines = [csv_line(row) for row in batch]
        state.digest.add_many(lines)
        if key_index is not None:
            keys = [k for k in (row[key_index] for row in batch) if k is not None]
            try:
                if keys:
                    low, high = min(keys), max(keys)
                    state.key_min = low if state.key_min is None else min(state.key_min, low)
                    state.key_max = high if state.key_max is None else max(state.key_max, high)
            except TypeError:  # SQLite: values of several storage classes have no order
                key_index, state.key_min, state.key_max = None, None, None
        yield b"".join(lines)
        if on_rows:
            on_rows(len(batch))


def _copy_chunks(
    source: Any,
    dataset: Named,
    columns: list[str],
    key_column: str | None,
    state: _Plain,
    on_rows: Callable[[int], None] | None,
) -> Iterator[bytes]:
    """PostgreSQL: records straight from COPY, joined into ~1 MiB chunks for zstd."""
    from retirement.sources.pg_copy import copy_export

    digest = state.digest = RowDigest()
    yield (",".join(csv_field(c) for c in columns) + "\n").encode("utf-8")
    with copy_export(source, dataset, key_column) as export:
        state.null_counts = list(export.null_counts)
        state.key_min, state.key_max = export.key_min, export.key_max
        pending: list[bytes] = []
        size = 0
        add = digest.add
        for record in export.records:
            line = bytes(record)  # hashing and joining bytes beats memoryviews
            add(line)
            pending.append(line)
            size += len(record)
            if size >= CHUNK:
                yield b"".join(pending)
                if on_rows:
                    on_rows(len(pending))
                pending, size = [], 0
        yield b"".join(pending)
        if on_rows:
            on_rows(len(pending))


def _document_chunks(source: Source, dataset: Named) -> Iterator[bytes]:
    if not isinstance(source, ObjectSource):
        raise BackupError(f"{dataset}: a document, but source {source.name} holds no objects")
    with source.open_bytes(dataset) as raw:
        while chunk := raw.read(CHUNK):
            yield chunk


def _produce(chunks: Iterator[bytes], fd: int, state: _Plain, level: int) -> None:
    compressor = zstandard.ZstdCompressor(level=level, threads=ZSTD_THREADS)
    try:
        with (
            os.fdopen(fd, "wb", buffering=CHUNK) as pipe,
            compressor.stream_writer(pipe, closefd=False) as z,
        ):
            for chunk in chunks:
                state.sha.update(chunk)
                state.size += len(chunk)
                z.write(chunk)
    except BaseException as exc:  # handed to the consumer thread, re-raised
        state.error = exc


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


def _chunks_for(
    source: Source,
    dataset: Named,
    kind: str,
    key_columns: tuple[str, ...],
    state: _Plain,
    on_rows: Callable[[int], None] | None,
) -> tuple[Iterator[bytes], list[str], str]:
    """The plaintext stream of a dataset in the backup format: (chunks, columns, format)."""
    if kind == "document":
        return _document_chunks(source, dataset), [], "bytes"
    columns = [c.name for c in source.schema(dataset)]
    key_index = columns.index(key_columns[0]) if key_columns and key_columns[0] in columns else None
    if getattr(source, "dialect", None) == "postgresql":
        key = columns[key_index] if key_index is not None else None
        return _copy_chunks(source, dataset, columns, key, state, on_rows), columns, "csv"
    return _table_chunks(source, dataset, columns, key_index, state, on_rows), columns, "csv"


def _fingerprint(state: _Plain, key_columns: tuple[str, ...]) -> SourceFingerprint:
    digest = state.digest
    return SourceFingerprint(
        rows=digest.rows if digest else 1,
        row_digest=digest.hexdigest() if digest else state.sha.hexdigest(),
        key_columns=tuple(key_columns),
        key_min=None if state.key_min is None else str(state.key_min),
        key_max=None if state.key_max is None else str(state.key_max),
        null_counts=tuple(state.null_counts or ()),
    )


def fingerprint_now(
    source: Source, dataset: Named, kind: str, key_columns: tuple[str, ...] = ()
) -> SourceFingerprint:
    """The fingerprint a backup made now would record, without writing anything."""
    state = _Plain(hashlib.sha256())
    chunks, _, _ = _chunks_for(source, dataset, kind, tuple(key_columns), state, None)
    for chunk in chunks:
        state.sha.update(chunk)
    return _fingerprint(state, tuple(key_columns))


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
) -> BackupResult:
    """Back up one dataset into ``out_dir/<plan>/<dataset>/``; return the signed manifest."""
    try:
        parsed = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:  # pyrage's RecipientError
        raise BackupError(f"{qualified}: a recipient is not an age X25519 public key") from exc
    if not parsed:
        raise BackupError(f"{qualified}: no recipient to encrypt to")
    folder = out_dir / plan / safe_name(qualified)
    folder.mkdir(parents=True, exist_ok=True)
    objects = source if isinstance(source, ObjectSource) else None
    read_from = objects.object_state(dataset) if objects is not None else None
    state = _Plain(hashlib.sha256())
    chunks, columns, fmt = _chunks_for(source, dataset, kind, key_columns, state, on_rows)
    tmp = folder / f".{uuid.uuid4().hex}.partial"
    read_fd, write_fd = os.pipe()
    producer = threading.Thread(
        target=_produce,
        args=(chunks, write_fd, state, level),
        name=f"backup-{qualified}",
        daemon=True,
    )
    producer.start()
    try:
        hashed = encrypt_to(read_fd, tmp, parsed)
    except (pyrage.EncryptError, OSError) as exc:
        producer.join(timeout=30)
        tmp.unlink(missing_ok=True)
        raise BackupError(
            f"{qualified}: writing the backup to {folder} failed ({exc}); "
            "nothing was kept: free space or fix the folder, then re-run"
        ) from exc
    except BaseException:
        producer.join(timeout=30)
        tmp.unlink(missing_ok=True)
        raise
    producer.join()
    if state.error is not None:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{qualified}: reading the source failed: {state.error}") from state.error
    if objects is not None and objects.object_state(dataset) != read_from:
        tmp.unlink(missing_ok=True)
        raise BackupError(
            f"{qualified}: the file changed while it was being backed up; nothing was kept: "
            "re-run the backup when it is no longer being written"
        )
    cipher_sha = hashed.sha.hexdigest()
    final = folder / f"{cipher_sha[:16]}.{'csv' if fmt == 'csv' else 'bin'}.zst.age"
    os.replace(tmp, final)
    fingerprint = _fingerprint(state, key_columns)
    manifest = Manifest(
        plan=plan,
        dataset=qualified,
        disposition=disposition,
        format=fmt,
        columns=tuple(
            {"name": c.name, "type": c.type}
            for c in (source.schema(dataset) if fmt == "csv" else [])
        ),
        fingerprint=fingerprint,
        plaintext_sha256=state.sha.hexdigest(),
        plaintext_size=state.size,
        ciphertext_sha256=cipher_sha,
        ciphertext_size=hashed.size,
        ciphertext_file=final.name,
        compression=f"zstd level {level}",
        encryption="age v1 (X25519)",
        recipients=tuple(recipients),
        created_at=created_at,
        tool=f"retirement {__version__}",
        extra={**(extra or {}), **({"source_object": read_from} if read_from else {})},
    )
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
            f"{qualified}: writing the manifest {manifest_path} failed ({exc.strerror or exc}); "
            "the backup was removed, nothing was kept: free space in the vault and re-run"
        ) from exc
    log.info(
        "backed up %s: %s rows, %s -> %s bytes",
        qualified,
        fingerprint.rows,
        state.size,
        hashed.size,
    )
    return BackupResult(manifest, manifest_path, final)
