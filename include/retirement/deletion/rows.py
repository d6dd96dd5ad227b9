"""A table's rows in the backup's line format: as the backup holds them (decrypted, streamed)
and as the database holds them now (PostgreSQL COPY; other databases through SQLAlchemy), so
the two compare byte for byte."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.crypto.age import decrypted_chunks
from retirement.formats.csv import csv_line, record_lists, stream_records
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import sqlalchemy as sa

    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named
    from retirement.sources.capabilities import RowDeleter


@dataclass(frozen=True)
class Backup:
    """The verified backup a deletion compares with: its signed manifest, the age file and
    the identities that open it."""

    manifest: Manifest
    cipher: Path
    identities: list[Any]

    def records(self) -> Iterator[bytes]:
        """Every row as its exact line (no header), streamed."""
        return backup_records(self.manifest, self.cipher, self.identities)

    def batches(self, size: int) -> Iterator[list[bytes]]:
        """Every row as its exact line (no header), ``size`` at a time (the last fewer),
        streamed: the records are cut from each decrypted block at once (``record_lists``)."""
        batch: list[bytes] = []
        header = True
        for records in record_lists(decrypted_chunks(self.cipher, self.identities)):
            if header and records:
                records, header = records[1:], False
            batch += records
            while len(batch) >= size:
                yield batch[:size]
                del batch[:size]
        if batch:
            yield batch


def backup_records(manifest: Manifest, cipher: Path, identities: list[Any]) -> Iterator[bytes]:
    """Every row of a CSV backup as its exact line (no header), streamed from the age file."""
    records = stream_records(decrypted_chunks(cipher, identities))
    next(records, None)  # header
    yield from records


def pg_copy_lines(
    conn: sa.Connection, query: str, params: list[Any] | None = None
) -> Iterator[bytes]:
    """Records of ``COPY (query) TO STDOUT`` in the backup's CSV form (FORCE_QUOTE *)."""
    raw = driver_connection(conn)
    sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
    with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
        for record in copy:
            yield bytes(record)


def pg_columns(conn: sa.Connection, table: sa.Table) -> str:
    prep = conn.dialect.identifier_preparer
    return ", ".join(prep.quote(c.name) for c in table.columns)


def pg_select(conn: sa.Connection, table: sa.Table) -> str:
    prep = conn.dialect.identifier_preparer
    return f"SELECT {pg_columns(conn, table)} FROM {prep.format_table(table)}"


def current_lines(source: RowDeleter, dataset: Named, conn: sa.Connection) -> Iterator[bytes]:
    """Every row of the table now, in the backup's line format, on ``conn``."""
    table = source.table(dataset)
    if conn.dialect.name == "postgresql":
        yield from pg_copy_lines(conn, pg_select(conn, table))
        return
    for row in conn.execution_options(stream_results=True).execute(source.selectable(dataset)):
        yield csv_line(row)
