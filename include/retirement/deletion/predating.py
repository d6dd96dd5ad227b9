"""PostgreSQL: a batch deleted by its key range without reading its rows back, because every
row it deletes is a row version older than the check that found the table equal to its
backup (the scheme: ``deletion.tables``; the range by bytes: ``deletion.key_ranges``).

The first attempt at a table's deletion reads the table again and compares it with the
backup's fingerprint (``tables.check_unchanged``). Just before that read, the *horizon* is
taken: the oldest transaction still running (``pg_snapshot_xmin``). Every transaction with a
lower id had ended, so a row version whose creating transaction (``xmin``) is below the
horizon, and that is still live when it is deleted, was live in the check's snapshot too: it
is one of the rows the check found equal to the backup (a table's dataset is the whole
table). A row inserted or updated after the horizon has a newer ``xmin``, whatever its
values, subtransactions included (a subtransaction's id is above its parent's).

So a batch's rows are deleted by key range and only their ``xmin`` comes back; the batch is
kept only when it deleted exactly the batch's number of rows and each of them predates the
horizon, else it rolls back to its savepoint and is deleted by the byte-compared ways. The
table must be the same relation, unaltered, as when the horizon was taken: its ``pg_class``
row predates the horizon too (a rename, a swap, a TRUNCATE or an ALTER writes a new one), it
is a plain table (``DELETE FROM ONLY``: inheritance children are never touched) without
triggers or rules (checked by ``key_ranges.not_for`` under the batch's lock). The horizon is
held only in memory by the attempt that made the check; a retried attempt compares bytes.

Ids are compared modulo 2^32 (``xmin`` is 32 bits): a version is older when it lies in the
2^31 ids below the horizon, which every live unfrozen version does (PostgreSQL freezes
before that); a frozen one from older than that was older than the check anyway, and the
horizon is used only while fewer than 2^30 ids have gone by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from retirement.deletion.key_ranges import in_savepoint
from retirement.sources.keys import pg_types

if TYPE_CHECKING:
    import sqlalchemy as sa

    from retirement.sources.capabilities import RowDeleter

_WRAP = 1 << 32
_HALF = 1 << 31
_FRESH = 1 << 30  # ids gone by since the horizon under which it is still used

# Older than the horizon, modulo 2^32: 1 <= (horizon - xid) mod 2^32 < 2^31.
_AGE = "((%(h32)s - {x}::text::int8 + 4294967296) %% 4294967296)"

_SAME_TABLE = f"""
SELECT c.relkind = 'r' AND {_AGE.format(x="c.xmin")} BETWEEN 1 AND 2147483647
   AND pg_current_xact_id()::text::numeric - %(h)s::numeric < {_FRESH}
FROM pg_class c WHERE c.oid = to_regclass(%(name)s)
"""


@dataclass(frozen=True)
class Horizon:
    """``pg_snapshot_xmin`` taken just before the check: every transaction below it had
    ended."""

    xid: int

    @property
    def params(self) -> dict[str, int]:
        return {"h": self.xid, "h32": self.xid % _WRAP}


def take_horizon(source: RowDeleter) -> Horizon | None:
    """The horizon now (PostgreSQL 13 and later), or None."""
    if source.dialect != "postgresql":
        return None
    with source.begin() as conn:
        xid = conn.exec_driver_sql("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        return Horizon(int(xid.scalar_one()))


def predating_batch(
    conn: sa.Connection,
    table: sa.Table,
    column: str,
    first: str,
    last: str,
    count: int,
    horizon: Horizon,
) -> int | None:
    """Delete the rows of ``ONLY table`` whose key lies between ``first`` and ``last`` (as the
    backup writes them) if they are ``count`` rows, each older than ``horizon``: how many, or
    None (rolled back to the savepoint, nothing of the batch deleted). Call it after
    ``key_ranges.not_for`` found the table plain and locked it."""
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    if not conn.exec_driver_sql(_SAME_TABLE, {**horizon.params, "name": name}).scalar():
        return None
    (kind,) = pg_types(conn, table, (column,))
    key = prep.quote(column)
    query = (
        f"WITH gone AS (DELETE FROM ONLY {name} WHERE {key} >= CAST(%(first)s AS {kind}) AND "
        f"{key} <= CAST(%(last)s AS {kind}) RETURNING xmin) SELECT count(*), "
        f"min({_AGE.format(x='xmin')}), max({_AGE.format(x='xmin')}) FROM gone"
    )

    def attempt() -> int | None:
        params = {**horizon.params, "first": first, "last": last}
        gone, young, old = conn.exec_driver_sql(query, params).one()
        if gone != count or (gone and not (young >= 1 and old < _HALF)):
            return None
        return int(gone)

    return in_savepoint(conn, attempt)
