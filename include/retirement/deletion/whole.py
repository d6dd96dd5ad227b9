"""Deleting a table without a usable key: one transaction that locks the table, reads every
row, and deletes only if each is a row of the backup (the scheme: ``deletion.tables``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.deletion.rows import backup_records, pg_columns, pg_copy_lines
from retirement.errors import DeletionRefused
from retirement.formats.csv import csv_line
from retirement.formats.row_bag import Matcher, RowBag
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.sql import SqlSource


def delete_whole(
    source: SqlSource, dataset: DatasetId, manifest: Manifest, cipher: Path, identities: list[Any]
) -> tuple[int, str]:
    """Delete every row of a table without a usable key, in one locked transaction, only if
    each row there is a row of the backup. Returns (rows deleted, how it was checked)."""
    table = source.table(dataset)
    engine = source.engine
    if engine.dialect.name == "sqlite":
        return _under_sqlite_write_lock(
            source,
            lambda raw: _sqlite_check_and_delete(
                raw, source, dataset, table, manifest, cipher, identities
            ),
        )
    with engine.begin() as conn:
        name = conn.dialect.identifier_preparer.format_table(table)
        if conn.dialect.name == "postgresql":
            # What the DELETE returns is exactly what it removed, in the backup's line form.
            query = f"DELETE FROM {name} RETURNING {pg_columns(conn, table)}"
            lines = pg_copy_lines(conn, query)
            bag = RowBag(lines)
            how = _judge_whole(bag, manifest, cipher, identities)
            return bag.rows, how
        locked = source.selectable(dataset).with_for_update()  # InnoDB: every row and gap
        bag = RowBag(
            csv_line(r) for r in conn.execution_options(stream_results=True).execute(locked)
        )
        how = _judge_whole(bag, manifest, cipher, identities)
        gone = conn.execute(sa.delete(table)).rowcount
        if gone != bag.rows:
            raise DeletionRefused(
                f"{manifest.dataset}: {bag.rows} rows were checked but the delete removed {gone}; "
                "rolled back, nothing was deleted"
            )
        return gone, how


def _under_sqlite_write_lock(
    source: SqlSource, work: Callable[[Any], tuple[int, str]]
) -> tuple[int, str]:
    """SQLite: ``work`` on the driver's connection under the database's write lock
    (BEGIN IMMEDIATE), committed only if it returns."""
    with source.engine.connect() as conn:
        raw = driver_connection(conn)
        before = raw.isolation_level
        raw.isolation_level = None
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                done = work(raw)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        finally:
            raw.isolation_level = before
    return done


def _sqlite_check_and_delete(
    raw: Any,
    source: SqlSource,
    dataset: DatasetId,
    table: sa.Table,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
) -> tuple[int, str]:
    compiled = source.selectable(dataset).compile(source.engine)
    bag = RowBag(csv_line(r) for r in raw.execute(str(compiled)))
    how = _judge_whole(bag, manifest, cipher, identities)
    name = source.engine.dialect.identifier_preparer.format_table(table)
    gone = raw.execute(f"DELETE FROM {name}").rowcount
    if gone != bag.rows:
        raise DeletionRefused(
            f"{manifest.dataset}: {bag.rows} rows were checked but the delete removed {gone}; "
            "rolled back, nothing was deleted"
        )
    return gone, how


def _judge_whole(bag: RowBag, manifest: Manifest, cipher: Path, identities: list[Any]) -> str:
    """How the table's rows were found to be the backup's; DeletionRefused (the caller's
    transaction rolls back) when one is not."""
    fp = manifest.fingerprint
    matcher = Matcher(bag)
    for record in backup_records(manifest, cipher, identities):
        matcher.feed(record)
    extra = matcher.unmatched_in_bag
    if extra:
        raise DeletionRefused(
            f"{manifest.dataset}: the table has no key, and {extra} of its {bag.rows} rows are "
            f"not rows of the backup of {manifest.created_at} (added or changed since): nothing "
            "was deleted (rolled back). Re-run backup (a new version), its gate and the "
            "transfer, or give the plan a key so rows added later can stay"
        )
    if bag.rows == fp.rows:
        return "every row compared with the backup in the same locked transaction: the same rows"
    return (
        f"every row compared with the backup in the same locked transaction: {bag.rows} of "
        f"its {fp.rows} rows were still there (the rest already gone), none other"
    )
