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
from retirement.formats.csv import (
    KEY_ORDER_METHOD,
    SUM_METHOD,
    OrderedRowDigest,
    RowDigest,
    csv_field,
    csv_line,
    row_digest,
)
from retirement.formats.digests import CHUNK
from retirement.model.manifest import Manifest, SourceFingerprint
from retirement.sources.capabilities import CopyExporter, KeyedSource, ObjectSource

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from retirement.crypto.age import HashingWriter
    from retirement.sources.base import Named, Source
    from retirement.sources.pg_copy import CopyExport

log = logging.getLogger(__name__)

ZSTD_LEVEL = 1
ZSTD_THREADS = -1  # zstd's own worker threads, one per core: compression leaves the GIL


# ---------------------------------------------------------------------- streams


@dataclass
class _Plain:
    """What is learnt of the plaintext while it streams, and whom to tell of rows read."""

    sha: Any
    on_rows: Callable[[int], None] | None = None
    size: int = 0
    digest: RowDigest | OrderedRowDigest | None = None
    key_min: Any = None
    key_max: Any = None
    null_counts: list[int] | None = None
    error: BaseException | None = None


def _header(columns: list[str]) -> bytes:
    return (",".join(csv_field(c) for c in columns) + "\n").encode("utf-8")


def _rows_read(state: _Plain, rows: int) -> None:
    if state.on_rows:
        state.on_rows(rows)


def _table_chunks(
    source: Source,
    dataset: Named,
    columns: list[str],
    key_index: int | None,
    state: _Plain,
    method: str,
) -> Iterator[bytes]:
    digest = state.digest = row_digest(method)
    state.null_counts = nulls = [0] * len(columns)
    yield _header(columns)
    for batch in source.batches(dataset):
        for i, values in enumerate(zip(*batch, strict=True)):
            nulls[i] += values.count(None)
        lines = [csv_line(row) for row in batch]
        block = b"".join(lines)
        digest.add_block(lines, block)
        if key_index is not None:
            keys = [k for k in (row[key_index] for row in batch) if k is not None]
            try:
                if keys:
                    low, high = min(keys), max(keys)
                    state.key_min = low if state.key_min is None else min(state.key_min, low)
                    state.key_max = high if state.key_max is None else max(state.key_max, high)
            except TypeError:  # SQLite: values of several storage classes have no order
                key_index, state.key_min, state.key_max = None, None, None
        yield block
        _rows_read(state, len(batch))


def _copy_chunks(
    copy: AbstractContextManager[CopyExport], columns: list[str], state: _Plain, method: str
) -> Iterator[bytes]:
    """The database's own export (PostgreSQL's COPY): records joined into ~1 MiB chunks.
    The row digest takes whole chunks (key order) or their records (sum)."""
    digest = state.digest = row_digest(method)
    yield _header(columns)
    with copy as export:
        state.null_counts = list(export.null_counts)
        state.key_min, state.key_max = export.key_min, export.key_max
        if export.blocks is not None:
            yield from _copy_blocks(export, digest, state)
            return
        if export.records is None:
            raise BackupError("a COPY export with neither records nor blocks")
        pending: list[bytes] = []
        append = pending.append
        size = 0
        for record in export.records:
            line = bytes(record)  # hashing and joining bytes beats memoryviews
            append(line)
            size += len(line)
            if size >= CHUNK:
                block = b"".join(pending)
                digest.add_block(pending, block)
                yield block
                _rows_read(state, len(pending))
                pending, size = [], 0
                append = pending.append
        block = b"".join(pending)
        digest.add_block(pending, block)
        yield block
        _rows_read(state, len(pending))


def _copy_blocks(
    export: CopyExport, digest: RowDigest | OrderedRowDigest, state: _Plain
) -> Iterator[bytes]:
    """COPY's output in blocks cut anywhere (psql's): only the key-order digest takes it;
    the row count is the export's, counted in its snapshot (verify recounts the records)."""
    if not isinstance(digest, OrderedRowDigest) or export.blocks is None:
        raise BackupError("COPY in blocks needs the key-order row digest")
    told = 0
    for block in export.blocks:
        digest.add_bytes(block)
        lines = min(block.count(b"\n"), export.rows - told)  # progress only
        told += lines
        _rows_read(state, lines)
        yield block
    digest.rows = export.rows
    _rows_read(state, export.rows - told)


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


def digest_method(source: Source, dataset: Named) -> str:
    """The row digest method for a new backup: key order where the source exports the rows
    ordered by a primary key (the order is then reproducible), else the order-free sum."""
    if isinstance(source, KeyedSource) and source.key_columns(dataset):
        return KEY_ORDER_METHOD
    return SUM_METHOD


def _chunks_for(
    source: Source,
    dataset: Named,
    kind: str,
    key_columns: tuple[str, ...],
    state: _Plain,
    method: str | None = None,
) -> tuple[Iterator[bytes], list[str], str]:
    """The plaintext stream of a dataset in the backup format: (chunks, columns, format).
    ``method`` is the row digest's (None: what a new backup uses, ``digest_method``)."""
    if kind == "document":
        return _document_chunks(source, dataset), [], "bytes"
    columns = [c.name for c in source.schema(dataset)]
    key_index = columns.index(key_columns[0]) if key_columns and key_columns[0] in columns else None
    key = columns[key_index] if key_index is not None else None
    method = method or digest_method(source, dataset)
    copy = (
        source.copy_export(dataset, key, blocks=method == KEY_ORDER_METHOD)
        if isinstance(source, CopyExporter)
        else None
    )
    if copy is not None:
        return _copy_chunks(copy, columns, state, method), columns, "csv"
    return _table_chunks(source, dataset, columns, key_index, state, method), columns, "csv"


def _fingerprint(state: _Plain, key_columns: tuple[str, ...]) -> SourceFingerprint:
    digest = state.digest
    return SourceFingerprint(
        rows=digest.rows if digest else 1,
        row_digest=digest.hexdigest() if digest else state.sha.hexdigest(),
        key_columns=tuple(key_columns),
        key_min=None if state.key_min is None else str(state.key_min),
        key_max=None if state.key_max is None else str(state.key_max),
        null_counts=tuple(state.null_counts or ()),
        row_digest_method=digest.method if digest else SUM_METHOD,
    )


def fingerprint_now(
    source: Source,
    dataset: Named,
    kind: str,
    key_columns: tuple[str, ...] = (),
    method: str | None = None,
) -> SourceFingerprint:
    """The fingerprint a backup made now would record, without writing anything; with
    ``method``, its row digest computed that way (to compare with an older manifest's)."""
    state = _Plain(hashlib.sha256())
    chunks, _, _ = _chunks_for(source, dataset, kind, tuple(key_columns), state, method)
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
    row_digest_method: str | None = None,
) -> BackupResult:
    """Back up one dataset into ``out_dir/<plan>/<dataset>/``; return the signed manifest.
    ``row_digest_method`` None: key order where the source has a primary key (formats/csv)."""
    parsed = _recipients(qualified, recipients)
    folder = out_dir / plan / safe_name(qualified)
    folder.mkdir(parents=True, exist_ok=True)
    objects = source if isinstance(source, ObjectSource) else None
    read_from = objects.object_state(dataset) if objects is not None else None
    state = _Plain(hashlib.sha256(), on_rows)
    chunks, _, fmt = _chunks_for(source, dataset, kind, key_columns, state, row_digest_method)
    tmp = folder / f".{uuid.uuid4().hex}.partial"
    hashed = _encrypted(chunks, tmp, parsed, state, level, qualified, folder)
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
    described = {
        "plan": plan,
        "dataset": qualified,
        "disposition": disposition,
        "recipients": tuple(recipients),
        "created_at": created_at,
        "extra": {**(extra or {}), **({"source_object": read_from} if read_from else {})},
    }
    schema = tuple(
        {"name": c.name, "type": c.type} for c in (source.schema(dataset) if fmt == "csv" else [])
    )
    manifest = _manifest(described, fmt, schema, fingerprint, state, hashed, final, level)
    manifest_path = _signed(manifest, final, signing_key)
    log.info(
        "backed up %s: %s rows, %s -> %s bytes",
        qualified,
        fingerprint.rows,
        state.size,
        hashed.size,
    )
    return BackupResult(manifest, manifest_path, final)


def _manifest(
    described: dict[str, Any],
    fmt: str,
    columns: tuple[dict[str, str], ...],
    fingerprint: SourceFingerprint,
    state: _Plain,
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


def _encrypted(
    chunks: Iterator[bytes],
    tmp: Path,
    parsed: list[Any],
    state: _Plain,
    level: int,
    qualified: str,
    folder: Path,
) -> HashingWriter:
    """Compress ``chunks`` in one thread and encrypt them into ``tmp`` in this one; what
    ``encrypt_to`` hashed of the ciphertext. Nothing is left behind when either side fails."""
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
    return hashed


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
