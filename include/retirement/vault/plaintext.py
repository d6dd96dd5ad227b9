"""The plaintext stream of a backup: a dataset read as CSV (or an object's bytes),
compressed by zstd on its own threads, with the row digest, key range and null counts
learnt on the way. vault/write.py encrypts, signs and keeps what this produces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zstandard

from retirement.errors import BackupError
from retirement.formats.csv import (
    ORDERED_METHODS,
    PLAINTEXT_METHOD,
    SUM_METHOD,
    AnyRowDigest,
    RowDigest,
    csv_field,
    csv_line,
    row_digest,
)
from retirement.formats.digests import CHUNK
from retirement.model.manifest import SourceFingerprint
from retirement.sources.capabilities import CopyExporter, KeyedSource, ObjectSource

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from psycopg.abc import Buffer

    from retirement.sources.base import Named, Source
    from retirement.sources.pg_copy import CopyExport

ZSTD_LEVEL = 1
ZSTD_THREADS = -1  # zstd's own worker threads, one per core: compression leaves the GIL


@dataclass
class PlainStream:
    """What is learnt of the plaintext while it streams, and whom to tell of rows read."""

    sha: Any
    on_rows: Callable[[int], None] | None = None
    size: int = 0
    digest: AnyRowDigest | None = None
    key_min: Any = None
    key_max: Any = None
    null_counts: list[int] | None = None
    error: BaseException | None = None
    rows_told: int = 0  # rows reported to on_rows from blocks (lines, for progress)


def _header(columns: list[str]) -> bytes:
    return (",".join(csv_field(c) for c in columns) + "\n").encode("utf-8")


def _rows_read(state: PlainStream, rows: int) -> None:
    if state.on_rows:
        state.on_rows(rows)


def _table_chunks(
    source: Source,
    dataset: Named,
    columns: list[str],
    key_index: int | None,
    state: PlainStream,
    method: str,
) -> Iterator[bytes]:
    digest = state.digest = row_digest(method, state.sha)
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
    copy: AbstractContextManager[CopyExport], columns: list[str], state: PlainStream, method: str
) -> Iterator[bytes]:
    """The database's own export (PostgreSQL's COPY): records joined into ~1 MiB chunks.
    The row digest takes whole chunks (key order) or their records (sum)."""
    digest = state.digest = row_digest(method, state.sha)
    yield _header(columns)
    with copy as export:
        if export.blocks is not None:
            yield from _copy_blocks(export.blocks, digest, state)
        elif export.records is not None:
            yield from _copy_records(export.records, digest, state)
        else:
            raise BackupError("a COPY export with neither records nor blocks")
        profile = export.profiled()
    state.null_counts = list(profile.null_counts)
    state.key_min, state.key_max = profile.key_min, profile.key_max
    if export.blocks is not None:  # the count in the export's snapshot (verify recounts)
        digest.rows = profile.rows
        _rows_read(state, max(profile.rows - state.rows_told, 0))


def _copy_records(
    records: Iterator[Buffer], digest: AnyRowDigest, state: PlainStream
) -> Iterator[bytes]:
    """COPY's records (one each) joined into ~1 MiB chunks."""
    pending: list[bytes] = []
    append = pending.append
    size = 0
    for record in records:
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
    blocks: Iterator[bytes], digest: AnyRowDigest, state: PlainStream
) -> Iterator[bytes]:
    """COPY's output in blocks cut anywhere (psql's): only a key-order digest takes it;
    the rows are counted by the export's snapshot at the end (progress counts lines)."""
    if isinstance(digest, RowDigest):
        raise BackupError("COPY in blocks needs a key-order row digest")
    for block in blocks:
        digest.add_bytes(block)
        lines = block.count(b"\n")  # progress only: a value may hold a line break
        state.rows_told += lines
        _rows_read(state, lines)
        yield block


def _document_chunks(source: Source, dataset: Named) -> Iterator[bytes]:
    if not isinstance(source, ObjectSource):
        raise BackupError(f"{dataset}: a document, but source {source.name} holds no objects")
    with source.open_bytes(dataset) as raw:
        while chunk := raw.read(CHUNK):
            yield chunk


def compress_into(
    chunks: Iterator[bytes], fd: int, state: PlainStream, level: int, small: bool = False
) -> None:
    """zstd over ``chunks`` into the pipe ``fd``, hashing the plaintext; ``small``: one
    thread (starting zstd's workers costs more than they save on a small object)."""
    compressor = zstandard.ZstdCompressor(level=level, threads=0 if small else ZSTD_THREADS)
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


def digest_method(source: Source, dataset: Named) -> str:
    """The row digest method for a new backup: the plaintext's own SHA-256 where the source
    exports the rows ordered by a primary key (the order, and so the bytes, are then
    reproducible), else the order-free sum."""
    if isinstance(source, KeyedSource) and source.key_columns(dataset):
        return PLAINTEXT_METHOD
    return SUM_METHOD


def chunks_for(
    source: Source,
    dataset: Named,
    kind: str,
    key_columns: tuple[str, ...],
    state: PlainStream,
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
        source.copy_export(dataset, key, blocks=method in ORDERED_METHODS)
        if isinstance(source, CopyExporter)
        else None
    )
    if copy is not None:
        return _copy_chunks(copy, columns, state, method), columns, "csv"
    return _table_chunks(source, dataset, columns, key_index, state, method), columns, "csv"


def fingerprint_of(state: PlainStream, key_columns: tuple[str, ...]) -> SourceFingerprint:
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
