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
psql's process works on the other core. The bytes are the same as the per-row path's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from retirement.errors import SourceError
from retirement.formats.digests import CHUNK
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from psycopg import Copy
    from psycopg.abc import Buffer

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource


@dataclass(frozen=True)
class CopyExport:
    records: Iterator[Buffer] | None  # one CSV record each (with its newline), no header
    null_counts: tuple[int, ...]
    key_min: object
    key_max: object
    blocks: Iterator[bytes] | None = None  # or the same bytes in blocks cut anywhere
    rows: int = 0  # count(*) in the export's snapshot


# Session settings that shape COPY's text output: psql's session gets ours.
_OUTPUT_SETTINGS = (
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "extra_float_digits",
    "bytea_output",
)


@contextmanager
def copy_export(
    source: SqlSource, dataset: Named, key_column: str | None, *, blocks: bool = False
) -> Iterator[CopyExport]:
    """Stream ``dataset`` with COPY, ordered by its primary key; PostgreSQL only. With
    ``blocks``, in large blocks through psql where it is installed (else records)."""
    table = source.table(dataset)
    keys = source.key_columns(dataset)
    profile = [sa.func.count() - sa.func.count(c) for c in table.columns] + [sa.func.count()]
    with source.connect() as conn:
        prep = conn.dialect.identifier_preparer
        order = f" ORDER BY {', '.join(prep.quote(k) for k in keys)}" if keys else ""
        select = f"SELECT {', '.join(prep.quote(c.name) for c in table.columns)} FROM " + (
            prep.format_table(table)
        )
        copy_sql = f"COPY ({select}{order}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        psql = shutil.which("psql") if blocks else None
        with conn.begin():
            # exported first: a snapshot cannot be exported once a savepoint was used
            script = _psql_script(conn, copy_sql) if psql is not None else b""
            try:
                values = conn.execute(sa.select(*profile)).one()
            except sa.exc.SQLAlchemyError as exc:
                raise SourceError(
                    f"source {source.name}: cannot read table {dataset}: "
                    f"{getattr(exc, 'orig', exc)}"
                ) from exc
            ncols = len(table.columns)
            key_min, key_max = _key_range(conn, table, key_column)
            nulls, rows = tuple(int(v) for v in values[:ncols]), int(values[ncols])
            raw = driver_connection(conn)
            if psql is not None:
                with _psql_copy(psql, script, raw, str(dataset)) as chunks:
                    yield CopyExport(None, nulls, key_min, key_max, chunks, rows)
                return
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                yield CopyExport(_records(copy), nulls, key_min, key_max, None, rows)


def _records(copy: Copy) -> Iterator[Buffer]:
    read = copy.read
    while row := read():
        yield row


def _psql_env(raw: Any) -> dict[str, str]:
    """psql's environment: our connection's parameters (password included) as libpq's
    environment variables, so that nothing secret is on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for option in raw.pgconn.info:
        if option.val is not None and option.envvar:
            env[option.envvar.decode()] = option.val.decode()
    return env


def _psql_script(conn: sa.Connection, copy_sql: str) -> bytes:
    """COPY in this transaction's snapshot, with this session's output settings."""
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
    lines = [
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
        f"SET TRANSACTION SNAPSHOT '{snapshot}';",
    ]
    for name in _OUTPUT_SETTINGS:
        value = conn.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar()
        lines.append(f"SET {name} = '{str(value).replace(chr(39), chr(39) * 2)}';")
    lines += [f"{copy_sql};", "COMMIT;"]
    return ("\n".join(lines) + "\n").encode()


@contextmanager
def _psql_copy(psql: str, script: bytes, raw: Any, where: str) -> Iterator[Iterator[bytes]]:
    """psql running ``script`` (``_psql_script``); its output in blocks of 1 MiB."""
    proc = subprocess.Popen(  # a fixed argv; the connection goes in the environment
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_psql_env(raw),
    )
    stdin, out, err = proc.stdin, proc.stdout, proc.stderr
    if stdin is None or out is None or err is None:  # never: all three are pipes
        raise SourceError(f"cannot read table {where} with psql: no pipes")
    stdin.write(script)
    stdin.close()

    def blocks() -> Iterator[bytes]:
        while block := out.read(CHUNK):
            yield block
        error = err.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise SourceError(f"cannot read table {where} with psql: {error}")

    try:
        yield blocks()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        out.close()
        err.close()


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
