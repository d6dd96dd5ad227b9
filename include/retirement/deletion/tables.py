"""Scoped deletion of table rows, each attempt re-checking exactly what it deletes.

Scope: exactly the rows of the verified backup. Whatever the attempt (first, retried after a
crash, resumed by an operator), nothing is deleted that was not checked, in the same
transaction, to be a row of the backup as it was backed up:

* **A table with a key** is deleted by key in batches of ``BATCH``, one short transaction
  each. PostgreSQL: ``COPY (DELETE ... WHERE key = ANY(CAST(... AS <type>[])) RETURNING
  ...)`` streams back exactly the rows it deleted, in the backup's own line format; any line
  that is not its key's backed-up line, or a key found twice, rolls the batch back. Other
  databases: the batch's rows are locked (``SELECT ... FOR UPDATE``; SQLite holds its write
  lock), read in the backup's line format and compared, then deleted by key, and the delete
  must remove exactly as many rows as were compared, or it rolls back.
* **A table without a usable key** is deleted in one transaction that locks it against
  writers, reads every row in the backup's line format, and deletes only if each of them is
  a row of the backup (the same rows; fewer, after an interrupted attempt or the
  application's own deletes; never one that is not in the backup). Otherwise it rolls back
  and says what differs.

Then ``VACUUM`` (PostgreSQL, SQLite) or ``OPTIMIZE TABLE`` (MySQL/MariaDB) so the freed
pages are reused (see docs/deletion.md for what that does and does not erase). Files and
objects: :mod:`retirement.deletion.objects`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from retirement.deletion import keyed
from retirement.deletion.keyed import delete_by_key
from retirement.deletion.result import DeletionResult
from retirement.deletion.whole import delete_whole
from retirement.errors import DeletionRefused

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import sqlalchemy as sa

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Source
    from retirement.sources.sql import SqlSource

log = logging.getLogger(__name__)


def reclaim(engine: sa.Engine, table: sa.Table) -> str:
    """Make the deleted rows' space reusable so the data does not linger in dead tuples."""
    name = engine.dialect.identifier_preparer.format_table(table)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"VACUUM {name}")
            return f"VACUUM {name}"
        if engine.dialect.name == "mysql":
            conn.exec_driver_sql(f"OPTIMIZE TABLE {name}")
            return f"OPTIMIZE TABLE {name}"
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            return "VACUUM (SQLite rewrites the whole database file)"
    return "no space reclamation for this database"


def delete_table_rows(
    source: SqlSource,
    dataset: DatasetId,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    *,
    secret_key: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> DeletionResult:
    """Delete exactly the backed-up rows of one table; then reclaim the space."""
    columns = tuple(manifest.fingerprint.key_columns)
    if columns:
        deleted = delete_by_key(
            source, dataset, manifest, cipher, identities, secret_key=secret_key, on_rows=on_rows
        )
        technique = (
            f"DELETE by key ({', '.join(columns)}) in batches of {keyed.BATCH}, each deleted row "
            "compared with its backed-up copy in the same transaction"
        )
    else:
        deleted, how = delete_whole(source, dataset, manifest, cipher, identities)
        technique = f"DELETE of the whole table (no key; {how})"
    table = source.table(dataset)
    technique += "; " + reclaim(source.engine, table)
    remaining = source.count(dataset)
    return DeletionResult("clear", technique, deleted, 0, remaining)


def drop_table(source: SqlSource, dataset: DatasetId, result: DeletionResult) -> DeletionResult:
    """DROP the table once nothing is left in it; rows added after the backup keep it."""
    table = source.table(dataset)
    if result.remaining:
        raise DeletionRefused(
            f"{dataset}: the plan retires the table (drop_table), but {result.remaining} rows "
            "that are not in the backup are still in it: back them up in a new run first; "
            "nothing was dropped"
        )
    with source.engine.begin() as conn:
        if source.count(dataset):
            raise DeletionRefused(f"{dataset}: rows appeared before DROP; nothing was dropped")
        table.drop(conn)
    source.forget(dataset)
    name = source.engine.dialect.identifier_preparer.format_table(table)
    return replace(result, technique=f"{result.technique}; DROP TABLE {name}")


def check_unchanged(source: Source, dataset: DatasetId, kind: str, manifest: Manifest) -> None:
    """Refuse unless the source's fingerprint now equals the one backed up (the first attempt's
    courtesy check: nothing is deleted at all when anything changed)."""
    from retirement.vault.write import fingerprint_now

    now = fingerprint_now(source, dataset, kind, manifest.fingerprint.key_columns)
    before = manifest.fingerprint
    if (now.rows, now.row_digest) != (before.rows, before.row_digest):
        change = (
            f"{now.rows - before.rows:+d} rows"
            if now.rows != before.rows
            else "the same number of rows, but some changed"
        )
        raise DeletionRefused(
            f"{manifest.dataset}: the source changed since the backup of {manifest.created_at} "
            f"({before.rows} rows then, {now.rows} now: {change}; row digest "
            f"{before.row_digest[:12]}… then, {now.row_digest[:12]}… now). Nothing was "
            "deleted: re-run backup (it makes a new version), its gate and the transfer"
        )
