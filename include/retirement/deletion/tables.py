"""Scoped deletion of table rows, each attempt re-checking exactly what it deletes.

Scope: exactly the rows of the verified backup. Whatever the attempt (first, retried after a
crash, resumed by an operator), nothing is deleted that was not checked, in the same
transaction, to be a row of the backup as it was backed up:

* **A table that is exactly its backup** (a key-order backup) is emptied at once, in one
  transaction that holds its rows against writers while they are read and found to give
  the backup's row count and key-order SHA-256 (header line included for
  ``sha256-plaintext``; ``deletion.at_once``): PostgreSQL
  TRUNCATE, MySQL/MariaDB (InnoDB, no triggers) a DELETE of every row committed only after
  the check; declined where that would do more than the batches' DELETE or could not be
  rolled back (the source's ``TableEmptier``). Any other table goes by the ways below; a
  single-column key's batch is first tried by its key range (``deletion.key_ranges``).
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

The source is asked only for its capabilities (``sources.capabilities``): a ``RowDeleter``
(transactions that read rows as the source reads them), then, where it is a ``Reclaimer``,
``VACUUM`` (PostgreSQL, SQLite) or ``OPTIMIZE TABLE`` (MySQL/MariaDB) so the freed pages are
reused, or the rewrite the plan asks for (``VACUUM FULL``; see docs/deletion.md for what
each does and does not erase), and a
``TableDropper`` for ``drop_table``. Files and objects: :mod:`retirement.deletion.objects`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from retirement.deletion import keyed
from retirement.deletion.at_once import empty_unchanged
from retirement.deletion.keyed import delete_by_key
from retirement.deletion.result import DeletionResult
from retirement.deletion.rows import Backup
from retirement.deletion.whole import delete_whole
from retirement.errors import DeletionRefused
from retirement.sources.capabilities import Reclaimer, TableDropper

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named, Source
    from retirement.sources.capabilities import RowDeleter

log = logging.getLogger(__name__)


def delete_table_rows(
    source: RowDeleter,
    dataset: Named,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    *,
    secret_key: bool = False,
    on_rows: Callable[[int], None] | None = None,
    rewrite: str | None = None,
) -> DeletionResult:
    """Delete exactly the backed-up rows of one table (a table that is exactly its backup
    emptied at once where the source can: ``deletion.at_once``); then reclaim the space (and
    rewrite the table if the plan asks)."""
    columns = tuple(manifest.fingerprint.key_columns)
    backup = Backup(manifest, cipher, identities)
    emptied = empty_unchanged(source, dataset, manifest)
    if emptied is not None:
        deleted, technique = emptied.deleted, emptied.technique
        if on_rows:
            on_rows(deleted)
    elif columns:
        deleted = delete_by_key(source, dataset, backup, secret_key, on_rows)
        technique = (
            f"DELETE by key ({', '.join(columns)}) in batches of {keyed.BATCH}, each deleted row "
            "compared with its backed-up copy in the same transaction"
        )
    else:
        deleted, how = delete_whole(source, dataset, backup)
        technique = f"DELETE of the whole table (no key; {how})"
    if emptied is not None and emptied.new_files:
        technique += "; the table's files replaced by new, empty ones (nothing to reclaim)"
    elif isinstance(source, Reclaimer):
        technique += "; " + source.reclaim(dataset, rewrite)
    else:
        technique += "; no space reclamation for this database"
    remaining = source.count(dataset)
    return DeletionResult("clear", technique, deleted, 0, remaining)


def drop_table(source: RowDeleter, dataset: Named, result: DeletionResult) -> DeletionResult:
    """DROP the table once nothing is left in it; rows added after the backup keep it."""
    if not isinstance(source, TableDropper):
        raise DeletionRefused(f"{dataset}: the plan retires the table, but its source drops none")
    if result.remaining:
        raise DeletionRefused(
            f"{dataset}: the plan retires the table (drop_table), but {result.remaining} rows "
            "that are not in the backup are still in it: back them up in a new run first; "
            "nothing was dropped"
        )
    dropped = source.drop_if_empty(dataset)
    if dropped is None:
        raise DeletionRefused(f"{dataset}: rows appeared before DROP; nothing was dropped")
    return replace(result, technique=f"{result.technique}; {dropped}")


def check_unchanged(source: Source, dataset: Named, kind: str, manifest: Manifest) -> None:
    """Refuse unless the source's fingerprint now equals the one backed up (the first attempt's
    courtesy check: nothing is deleted at all when anything changed)."""
    from retirement.vault.write import fingerprint_now

    before = manifest.fingerprint
    now = fingerprint_now(source, dataset, kind, before.key_columns, before.row_digest_method)
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
