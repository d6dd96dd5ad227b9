"""PostgreSQL's fast path for backups: ``COPY (SELECT ...) TO STDOUT`` in CSV.

The rows, their NULL counts and the key range are read in one REPEATABLE READ snapshot,
so the profile in the manifest describes exactly the rows in the stream. PostgreSQL sends
one CopyData message per row: each item this yields is one whole CSV record, so the row
digest needs no CSV parsing. Every non-NULL value is quoted (FORCE_QUOTE *), which keeps
NULL (an empty unquoted field) apart from the empty string (``""``).

Where the caller wants the records in large blocks (the key-order row digest needs no record
boundaries) and ``psql`` is installed, PostgreSQL's own client runs the COPY in the same
snapshot (``pg_export_snapshot``, ``SET TRANSACTION SNAPSHOT``) with the same session
settings, and its output is read from a pipe 1 MiB at a time: no Python call per row, and
psql's process works on the other core. The bytes are the same as the per-row path's. The
profile's full scan then runs beside the COPY (a thread on this connection, in the same
snapshot) instead of before it; the caller reads it once the stream is read.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from retirement.errors import SourceError
from retirement.formats.digests import CHUNK
from retirement.sources.psql import PsqlCopy, output_settings, psql_copy, psql_env
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from psycopg import Copy
    from psycopg.abc import Buffer

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource


@dataclass(frozen=True)
class RowsProfile:
    """The exported rows' NULLs per column, key range and count, in the export's snapshot."""

    null_counts: tuple[int, ...]
    key_min: object
    key_max: object
    rows: int  # count(*)


@dataclass(frozen=True)
class CopyExport:
    records: Iterator[Buffer] | None  # one CSV record each (with its newline), no header
    blocks: Iterator[bytes] | None  # or the same bytes in blocks cut anywhere
    # The profile; read it once the stream is read: it may wait for the query that reads it
    # beside the stream (psql's COPY runs in its own process).
    profiled: Callable[[], RowsProfile]


@contextmanager
def copy_export(
    source: SqlSource, dataset: Named, key_column: str | None, *, blocks: bool = False
) -> Iterator[CopyExport]:
    """Stream ``dataset`` with COPY, ordered by its primary key; PostgreSQL only. With
    ``blocks``, in large blocks through psql where it is installed (else records)."""
    table = source.table(dataset)
    keys = source.key_columns(dataset)
    with source.connect() as conn:
        prep = conn.dialect.identifier_preparer
        order = f" ORDER BY {', '.join(prep.quote(k) for k in keys)}" if keys else ""
        select = f"SELECT {', '.join(prep.quote(c.name) for c in table.columns)} FROM " + (
            prep.format_table(table)
        )
        copy_sql = f"COPY ({select}{order}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
        where = f"source {source.name}: cannot read table {dataset}"
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        psql = shutil.which("psql") if blocks else None
        with conn.begin():
            # The table held against DDL (TRUNCATE, a rename, a rewrite) before the snapshot
            # is taken, until the commit: the profile, read beside psql's COPY, and the COPY
            # read one table. LOCK takes no snapshot, so the snapshot comes after the lock.
            _hold(conn, prep.format_table(table), where)
            # exported first: a snapshot cannot be exported once a savepoint was used
            script = _psql_script(conn, copy_sql) if psql is not None else b""
            raw = driver_connection(conn)
            if psql is None:
                profile = _profile(conn, table, key_column, where)
                with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    yield CopyExport(_records(copy), None, lambda: profile)
                return
            # psql streams in the exported snapshot while this connection reads the profile
            # in the same snapshot, on the server's other core; joined before the commit.
            with (
                psql_copy(psql, script, psql_env(raw), where) as run,
                ThreadPoolExecutor(1) as pool,
            ):
                profiled = pool.submit(_profile, conn, table, key_column, where)
                yield CopyExport(None, _blocks(run), profiled.result)


def _hold(conn: sa.Connection, name: str, where: str) -> None:
    try:
        conn.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS SHARE MODE")
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"{where}: {getattr(exc, 'orig', exc)}") from exc


def _profile(
    conn: sa.Connection, table: sa.Table, key_column: str | None, where: str
) -> RowsProfile:
    """NULLs per column, key range and count of ``table`` in ``conn``'s snapshot."""
    profile = [sa.func.count() - sa.func.count(c) for c in table.columns] + [sa.func.count()]
    try:
        values = conn.execute(sa.select(*profile)).one()
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"{where}: {getattr(exc, 'orig', exc)}") from exc
    ncols = len(table.columns)
    key_min, key_max = _key_range(conn, table, key_column)
    return RowsProfile(tuple(int(v) for v in values[:ncols]), key_min, key_max, int(values[ncols]))


def _records(copy: Copy) -> Iterator[Buffer]:
    read = copy.read
    while row := read():
        yield row


# How long psql's COPY may wait for its lock on the table. The exporting transaction holds
# the table already (ACCESS SHARE), so psql waits only when a change to the table's
# definition queued between the two: that change waits for the export, the export for psql,
# psql for the change. The wait ends in an error naming it instead of never.
PSQL_LOCK_WAIT = "10s"


def _psql_script(conn: sa.Connection, copy_sql: str) -> bytes:
    """COPY in this transaction's snapshot, with this session's output settings."""
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
    lines = [
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
        f"SET TRANSACTION SNAPSHOT '{snapshot}';",
        f"SET LOCAL lock_timeout = '{PSQL_LOCK_WAIT}';",
        *output_settings(conn),
        f"{copy_sql};",
        "COMMIT;",
    ]
    return ("\n".join(lines) + "\n").encode()


def _blocks(run: PsqlCopy) -> Iterator[bytes]:
    """psql's output in blocks of 1 MiB; SourceError at the end if psql failed."""
    while block := run.stdout.read(CHUNK):
        yield block
    run.finish()


def _key_range(
    conn: sa.Connection, table: sa.Table, key_column: str | None
) -> tuple[object, object]:
    """The key's smallest and largest value, in the export's snapshot; (None, None) for a
    type without an order (uuid has none in min(), boolean neither)."""
    if key_column is None:
        return None, None
    column = table.c[key_column]
    try:
        with conn.begin_nested():
            low, high = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
    except sa.exc.SQLAlchemyError:
        return None, None
    return low, high
