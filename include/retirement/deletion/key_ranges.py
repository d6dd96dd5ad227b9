"""A batch of a table with a single-column key deleted by its key range (the scheme:
``deletion.tables``; the batch by its keys: ``deletion.keyed``).

The rows whose key lies between the batch's first and last backed-up key are deleted inside
a savepoint and accepted only when they are, in key order, the batch's backed-up lines byte
for byte (CSV records delimit themselves: then they are exactly the batch's rows). Anything
else (a row added inside the range, one already deleted, another order, a changed row, a
database error such as a foreign key or a lock on a row kept) rolls back to the savepoint,
and the batch goes by its keys. One range scan and two key values replace a lookup and a
value per key.

A range may touch rows that are not the batch's before it is rolled back, so it is tried
only where the rollback undoes everything it did, checked in each batch's transaction with
the table locked against changes to its definition: PostgreSQL plain or partitioned tables
without triggers or rules (a trigger may act outside the transaction, through dblink say);
MySQL/MariaDB InnoDB base tables without triggers (``mysql_empty.not_undone``; MyISAM and
Aria ignore savepoints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from retirement.deletion.rows import pg_columns, pg_copy_lines
from retirement.sources.keys import pg_types, python_value
from retirement.sources.mysql_empty import not_undone
from retirement.sources.mysql_export import line_sql

if TYPE_CHECKING:
    from collections.abc import Sequence

_PG_PLAIN = """
SELECT c.relkind IN ('r', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
   AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid
                   AND r.rulename <> '_RETURN')
FROM pg_class c WHERE c.oid = to_regclass(%(name)s)
"""


def not_for(conn: sa.Connection, table: sa.Table) -> str | None:
    """Why this batch's transaction may not try a range, or None. Takes the lock the DELETE
    would take first, so the table's definition cannot change until the batch commits."""
    name = conn.dialect.identifier_preparer.format_table(table)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {name} IN ROW EXCLUSIVE MODE")
        plain = conn.exec_driver_sql(_PG_PLAIN, {"name": name}).scalar()
        return None if plain else "it has triggers or rules, or is not a plain table"
    if conn.dialect.name == "mysql":
        conn.exec_driver_sql(f"SELECT 1 FROM {name} LIMIT 0").all()  # its metadata lock
        return not_undone(conn, table)
    return "no key ranges for this database"


def range_batch(
    conn: sa.Connection,
    table: sa.Table,
    column: str,
    first: tuple[str, bool],
    last: tuple[str | None, bool],
    records: Sequence[bytes],
) -> int | None:
    """Delete the rows between ``first`` and ``last`` (key text as the backup holds it,
    quoted or not) if they are ``records``: how many, or None (rolled back to the
    savepoint, nothing of the batch deleted)."""
    block = b"".join(records)
    savepoint = conn.begin_nested()
    try:
        gone = _delete_range(conn, table, column, first, last, block, len(records))
    except (sa.exc.DBAPIError, conn.dialect.loaded_dbapi.Error):
        gone = None  # a row kept in the range refused it (a foreign key, a lock): by keys
    if gone is None:
        savepoint.rollback()
        return None
    savepoint.commit()
    return gone


def _delete_range(
    conn: sa.Connection,
    table: sa.Table,
    column: str,
    first: tuple[str, bool],
    last: tuple[str | None, bool],
    block: bytes,
    count: int,
) -> int | None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        prep = conn.dialect.identifier_preparer
        (kind,) = pg_types(conn, table, (column,))
        key = prep.quote(column)
        query = (
            f"WITH gone AS (DELETE FROM {prep.format_table(table)} WHERE {key} >= "
            f"CAST(%s AS {kind}) AND {key} <= CAST(%s AS {kind}) RETURNING "
            f"{pg_columns(conn, table)}) SELECT * FROM gone ORDER BY {key}"
        )
        lines = list(pg_copy_lines(conn, query, [first[0], last[0]]))
        return len(lines) if b"".join(lines) == block else None
    text = line_sql(conn.dialect.identifier_preparer, table) if dialect == "mysql" else None
    if text is None:
        return None
    col = table.c[column]
    low, high = (python_value(dialect, col, v, q) for v, q in (first, last))
    within = sa.type_coerce(col, sa.types.NullType()).between(low, high)
    if text.locked(conn, table, within, [column]) != block:
        return None
    gone = conn.execute(sa.delete(table).where(within)).rowcount
    return gone if gone == count else None
