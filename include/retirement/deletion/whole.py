"""Deleting a table without a usable key: one transaction that locks the table, reads every
row, and deletes only if each is a row of the backup (the scheme: ``deletion.tables``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from retirement.deletion.rows import pg_columns, pg_copy_lines
from retirement.errors import DeletionRefused
from retirement.formats.csv import csv_line
from retirement.formats.row_bag import Matcher, RowBag

if TYPE_CHECKING:
    from retirement.deletion.rows import Backup
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named
    from retirement.sources.capabilities import RowDeleter


def delete_whole(source: RowDeleter, dataset: Named, backup: Backup) -> tuple[int, str]:
    """Delete every row of a table without a usable key, in one locked transaction, only if
    each row there is a row of the backup. Returns (rows deleted, how it was checked)."""
    manifest = backup.manifest
    table = source.table(dataset)
    if source.dialect == "sqlite":
        with source.write_locked() as raw:  # SQLite: the database's write lock, BEGIN IMMEDIATE
            select = str(source.selectable(dataset).compile(dialect=sqlite.dialect()))
            bag = RowBag(csv_line(r) for r in raw.execute(select))
            how = _judge_whole(bag, backup)
            gone = raw.execute(f"DELETE FROM {source.quoted(dataset)}").rowcount
            _removed_as_checked(manifest, bag, gone)
            return gone, how
    with source.begin() as conn:
        if conn.dialect.name == "postgresql":
            # What the DELETE returns is exactly what it removed, in the backup's line form.
            query = f"DELETE FROM {source.quoted(dataset)} RETURNING {pg_columns(conn, table)}"
            bag = RowBag(pg_copy_lines(conn, query))
            return bag.rows, _judge_whole(bag, backup)
        locked = source.selectable(dataset).with_for_update()  # InnoDB: every row and gap
        bag = RowBag(
            csv_line(r) for r in conn.execution_options(stream_results=True).execute(locked)
        )
        how = _judge_whole(bag, backup)
        gone = conn.execute(sa.delete(table)).rowcount
        _removed_as_checked(manifest, bag, gone)
        return gone, how


def _removed_as_checked(manifest: Manifest, bag: RowBag, gone: int) -> None:
    """Refuse (the transaction rolls back) unless the delete removed the rows checked."""
    if gone != bag.rows:
        raise DeletionRefused(
            f"{manifest.dataset}: {bag.rows} rows were checked but the delete removed {gone}; "
            "rolled back, nothing was deleted"
        )


def _judge_whole(bag: RowBag, backup: Backup) -> str:
    """How the table's rows were found to be the backup's; DeletionRefused (the caller's
    transaction rolls back) when one is not."""
    manifest = backup.manifest
    fp = manifest.fingerprint
    matcher = Matcher(bag)
    for record in backup.records():
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
