"""PostgreSQL: empty a table at once (TRUNCATE), only inside a transaction that held it
against writers while a check ran on its rows (``TableEmptier``; the check and why it is
enough: ``deletion.at_once``).

``LOCK TABLE ... IN SHARE MODE`` waits for the writers in progress and keeps every other
writer out until the transaction ends, while readers (another session's export included)
read on. Whatever ``check`` reads after the lock is what the table holds until ``TRUNCATE``
(which then takes the table exclusively for the moment it needs) and ``COMMIT``.

The table is the one its name meant when it was locked, and only that one: the name is
resolved once, the lock and ``TRUNCATE`` use the schema-qualified name of that table, the
catalog is read by its oid, and the name must still mean that table in a new session (as
the check's sessions resolve it) before and after the check. The transaction is READ
COMMITTED whatever the database's default, so what is read after the lock is read after it.

TRUNCATE is declined, and nothing is done, where it would remove or do more than deleting
the rows the check read: row-level security (the check may not see every row), a foreign
key from another table, triggers or rules (a DELETE would run them, TRUNCATE does not),
inheritance children or partitions, a publication that replicates TRUNCATE (a subscriber
would lose rows of its own), a column list that is not the one the backup recorded, or a
lock that does not come within the timeout (a writer or a long reader in the way).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.sources.capabilities import Emptied

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

# How long the lock against writers, then the exclusive lock for TRUNCATE, may be waited for;
# readers queue behind a waiting TRUNCATE, so its wait is short.
HOLD_TIMEOUT = "5s"
EMPTY_TIMEOUT = "500ms"

_LOCK_NOT_AVAILABLE, _DEADLOCK = "55P03", "40P01"

_RESOLVE = """
SELECT c.oid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(name)s)
"""

_BLOCKERS = """
SELECT c.relkind::text, c.relrowsecurity, c.relhassubclass,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.confrelid = c.oid AND k.contype = 'f'),
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
       EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN'),
       EXISTS (SELECT 1 FROM pg_publication p JOIN pg_publication_tables pt
               ON pt.pubname = p.pubname
               WHERE p.pubtruncate AND pt.schemaname = n.nspname AND pt.tablename = c.relname),
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = %(oid)s
"""


class _Declined(Exception):
    """TRUNCATE is not for this table now (the transaction rolls back; nothing was done)."""


def why_not(row: Sequence[Any], columns: Sequence[str]) -> str | None:
    """Why TRUNCATE would do more than delete the checked rows, or None."""
    kind, secured, children, referenced, triggers, rules, published, names = row
    reasons = [
        (kind != "r", "it is not a plain table"),
        (bool(secured), "row-level security is on"),
        (bool(children), "it has inheritance children or partitions"),
        (bool(referenced), "another table's foreign key references it"),
        (bool(triggers), "it has triggers (a DELETE runs them)"),
        (bool(rules), "it has rules"),
        (bool(published), "a publication replicates its TRUNCATE"),
        (list(names or ()) != list(columns), "its columns are not the backed-up ones"),
    ]
    return next((why for hit, why in reasons if hit), None)


def truncate_checked(
    engine: sa.Engine, name: str, columns: Sequence[str], check: Callable[[], bool]
) -> Emptied | None:
    """Hold the table ``name`` (quoted, as the source writes it) against writers, run
    ``check``, and TRUNCATE it in the same transaction only when ``check`` returns True.
    What was run, or None when nothing was (why is logged)."""
    try:
        with engine.connect() as plain:
            conn = plain.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                qualified = _empty_if(engine, conn, name, columns, check)
    except _Declined as why:
        log.info("%s: not emptied at once (%s); deleting by batches", name, why)
        return None
    return Emptied(f"TRUNCATE TABLE {qualified}", new_files=True)


def _empty_if(
    engine: sa.Engine,
    conn: sa.Connection,
    name: str,
    columns: Sequence[str],
    check: Callable[[], bool],
) -> str:
    _locked(conn, f"SET LOCAL lock_timeout = '{HOLD_TIMEOUT}'")
    oid, qualified = _resolve(conn, name)
    _locked(conn, f"LOCK TABLE {qualified} IN SHARE MODE")
    if _resolve(conn, qualified) != (oid, qualified):
        raise _Declined("it was renamed or replaced while it was being locked")
    why = why_not(tuple(conn.exec_driver_sql(_BLOCKERS, {"oid": oid}).one()), columns)
    if why is not None:
        raise _Declined(why)
    _same_table_elsewhere(engine, name, oid)
    if not check():
        raise _Declined("its rows are not the backed-up rows")
    _same_table_elsewhere(engine, name, oid)
    _locked(conn, f"SET LOCAL lock_timeout = '{EMPTY_TIMEOUT}'")
    _locked(conn, f"TRUNCATE TABLE {qualified}")
    return qualified


def _resolve(conn: sa.Connection, name: str) -> tuple[int, str]:
    row = conn.exec_driver_sql(_RESOLVE, {"name": name}).one_or_none()
    if row is None:
        raise _Declined("no such table")
    return int(row[0]), str(row[1])


def _same_table_elsewhere(engine: sa.Engine, name: str, oid: int) -> None:
    """The name means the locked table in a new session too (as the check's sessions read
    it): not a table of the same name in a schema earlier on the search path."""
    with engine.connect() as other:
        row = other.exec_driver_sql(_RESOLVE, {"name": name}).one_or_none()
    if row is None or int(row[0]) != oid:
        raise _Declined("its name means another table in a new session")


def _locked(conn: sa.Connection, sql: str) -> None:
    """Run ``sql``; a lock not had in time, or a deadlock, declines (rolled back)."""
    try:
        conn.exec_driver_sql(sql)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in (_LOCK_NOT_AVAILABLE, _DEADLOCK):
            raise _Declined(f"{sql}: {str(exc.orig).strip()}") from exc
        raise
