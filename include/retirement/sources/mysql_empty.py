"""MySQL/MariaDB: empty a table at once, in one transaction that commits only after a check
of the rows it removed (``TableEmptier``; the check and why it is enough:
``deletion.at_once``).

``DELETE FROM t`` takes an exclusive lock on each row it removes, so when it returns every
removed row is held against every other writer until the transaction ends. Another
session's consistent read, begun after that (the check's export), reads the committed
versions: the rows the DELETE removed, and any row committed beside them since (which the
check then finds is not the backup's). The transaction commits only when the DELETE removed
the number of rows the backup holds, the table's columns are still the backed-up ones, and
the check says the rows are the backup's; otherwise it rolls back and nothing is deleted.

Only where a rollback undoes everything the DELETE did: an InnoDB base table with no
triggers and no other table's foreign key onto it (read with the table's metadata lock
held, so none of that can change before the COMMIT); anything else goes by the checked
batches. Readers (consistent reads) read on; writers wait for the commit. The table is then
reclaimed as after the batches (``OPTIMIZE TABLE``). A lock not had within ``LOCK_WAIT_S``
seconds, or a deadlock, declines (rolled back); the session's own lock wait is restored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from retirement.sources.capabilities import Emptied

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

LOCK_WAIT_S = 5
_LOCK_WAIT_TIMEOUT, _DEADLOCK = 1205, 1213

_COLUMNS = sa.text(
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :table "
    "ORDER BY ordinal_position"
)


_TABLE = sa.text(
    "SELECT t.engine, t.table_type, "
    "(SELECT COUNT(*) FROM information_schema.triggers g "
    " WHERE g.event_object_schema = t.table_schema AND g.event_object_table = t.table_name), "
    "(SELECT COUNT(*) FROM information_schema.referential_constraints r "
    " WHERE r.unique_constraint_schema = t.table_schema "
    " AND r.referenced_table_name = t.table_name) "
    "FROM information_schema.tables t "
    "WHERE t.table_schema = COALESCE(:schema, DATABASE()) AND t.table_name = :table"
)


class _Declined(Exception):
    """Not emptied at once (the transaction rolls back; nothing was deleted)."""


def delete_all_checked(
    engine: sa.Engine, table: sa.Table, columns: Sequence[str], rows: int, check: Callable[[], bool]
) -> Emptied | None:
    """Delete every row of ``table`` and commit only if they were ``rows`` rows and
    ``check``, run while they are held, returns True. What was run, or None (rolled back)."""
    name = engine.dialect.identifier_preparer.format_table(table)
    try:
        with engine.begin() as conn:
            _empty_if(conn, table, name, columns, rows, check)
    except _Declined as why:
        log.info("%s: not emptied at once (%s); deleting by batches", name, why)
        return None
    return Emptied(f"DELETE FROM {name} (every row, held until the commit)", new_files=False)


def _empty_if(
    conn: sa.Connection,
    table: sa.Table,
    name: str,
    columns: Sequence[str],
    rows: int,
    check: Callable[[], bool],
) -> None:
    # The table's metadata lock, held to the end: no trigger, engine or column can change
    # between what is read of the catalog below and the COMMIT.
    conn.exec_driver_sql(f"SELECT 1 FROM {name} LIMIT 0").all()
    _allowed(conn, table, columns)
    before = conn.exec_driver_sql("SELECT @@SESSION.innodb_lock_wait_timeout").scalar_one()
    conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_S}")
    try:
        gone = conn.exec_driver_sql(f"DELETE FROM {name}").rowcount
    except sa.exc.DBAPIError as exc:
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if code in (_LOCK_WAIT_TIMEOUT, _DEADLOCK):
            raise _Declined(f"DELETE: {exc.orig}") from exc
        raise
    finally:
        conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {int(before)}")
    if gone != rows:
        raise _Declined(f"the DELETE removed {gone} rows, the backup holds {rows}")
    _allowed(conn, table, columns)
    if not check():
        raise _Declined("its rows are not the backed-up rows")


def _allowed(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> None:
    """Refuse where the DELETE's rollback could not undo all it did (``not_undone``), where
    it would do more than remove the checked rows (another table's foreign key onto it), or
    where the columns are not the backed-up ones."""
    why = not_undone(conn, table)
    if why is not None:
        raise _Declined(why)
    where = {"schema": table.schema, "table": table.name}
    if conn.execute(_TABLE, where).one()[3]:
        raise _Declined("another table's foreign key references it")
    now = conn.execute(_COLUMNS, where).scalars().all()
    if list(now) != list(columns):
        raise _Declined("its columns are not the backed-up ones")


def not_undone(conn: sa.Connection, table: sa.Table) -> str | None:
    """Why a rollback (of the transaction, or to a savepoint) might not undo a DELETE from
    ``table``, or None: it is not InnoDB (MyISAM, Aria, MEMORY keep a DELETE whatever is
    rolled back), it has triggers (which may write to such tables), or it is not a base
    table (a system-versioned table keeps what is deleted)."""
    row = conn.execute(_TABLE, {"schema": table.schema, "table": table.name}).one_or_none()
    if row is None:
        return "no such table"
    engine, kind, triggers, _ = row
    reasons = [
        (str(engine).lower() != "innodb", f"its engine is {engine}, not InnoDB"),
        (kind != "BASE TABLE", f"it is a {kind}"),
        (bool(triggers), "it has triggers"),
    ]
    return next((why for hit, why in reasons if hit), None)
