"""PostgreSQL's fast path for backups: ``COPY (SELECT ...) TO STDOUT`` in CSV.

The rows, their NULL counts and the key range are read in one REPEATABLE READ snapshot,
so the profile in the manifest describes exactly the rows in the stream. PostgreSQL sends
one CopyData message per row: each item this yields is one whole CSV record, so the row
digest needs no CSV parsing. Every non-NULL value is quoted (FORCE_QUOTE *), which keeps
NULL (an empty unquoted field) apart from the empty string (``""``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from retirement.errors import SourceError
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from psycopg import Copy
    from psycopg.abc import Buffer

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource


@dataclass(frozen=True)
class CopyExport:
    records: Iterator[Buffer]  # one CSV record each (with its newline), no header
    null_counts: tuple[int, ...]
    key_min: object
    key_max: object


@contextmanager
def copy_export(source: SqlSource, dataset: Named, key_column: str | None) -> Iterator[CopyExport]:
    """Stream ``dataset`` with COPY, ordered by its primary key; PostgreSQL only."""
    table = source.table(dataset)
    keys = source.key_columns(dataset)
    prep = source.engine.dialect.identifier_preparer
    order = f" ORDER BY {', '.join(prep.quote(k) for k in keys)}" if keys else ""
    select = f"SELECT {', '.join(prep.quote(c.name) for c in table.columns)} FROM " + (
        prep.format_table(table)
    )
    copy_sql = f"COPY ({select}{order}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
    profile = [sa.func.count() - sa.func.count(c) for c in table.columns]
    with source.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            try:
                values = conn.execute(sa.select(*profile)).one()
            except sa.exc.SQLAlchemyError as exc:
                raise SourceError(
                    f"source {source.name}: cannot read table {dataset}: "
                    f"{getattr(exc, 'orig', exc)}"
                ) from exc
            ncols = len(table.columns)
            key_min, key_max = _key_range(conn, table, key_column)
            raw = driver_connection(conn)
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                yield CopyExport(
                    _records(copy), tuple(int(v) for v in values[:ncols]), key_min, key_max
                )


def _records(copy: Copy) -> Iterator[Buffer]:
    read = copy.read
    while row := read():
        yield row


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
