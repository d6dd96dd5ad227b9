"""Deleting every row of a table at once: TRUNCATE, inside the transaction that holds the
table against writers while its rows are found to be exactly the backed-up rows (the
scheme: ``deletion.tables``; the lock and when TRUNCATE is declined: the source's
``CheckedTruncator``).

Why the check is enough. The manifest is the one the chain recorded (its SHA-256 and
signature checked again by ``recheck_backup`` just before), and it records the backup's row
count and the SHA-256 of its records in key order (``sha256-key-order``); gate_backup
restore-verified that the age file, whose SHA-256 ``recheck_backup`` found unchanged, holds
exactly those records. The table's records, read under the lock in the same order and
format, give the same count and SHA-256, and CSV records delimit themselves: the table holds
exactly the backed-up rows, and no writer can change that before TRUNCATE commits. A backup
with the order-independent digest (``sha256-sum``) is not emptied this way: its table is
deleted by batches, each row compared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retirement.formats.csv import KEY_ORDER_METHOD
from retirement.sources.base import Source
from retirement.sources.capabilities import CheckedTruncator

if TYPE_CHECKING:
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named


def truncate_unchanged(
    source: object, dataset: Named, manifest: Manifest
) -> tuple[int, str] | None:
    """Empty the table at once if, under the lock against writers, its rows are the
    backed-up rows: (rows deleted, how), or None when nothing was done."""
    fp = manifest.fingerprint
    if (
        not isinstance(source, CheckedTruncator)
        or not isinstance(source, Source)
        or fp.row_digest_method != KEY_ORDER_METHOD
    ):
        return None
    from retirement.vault.write import fingerprint_now

    def unchanged() -> bool:
        now = fingerprint_now(source, dataset, "table", fp.key_columns, fp.row_digest_method)
        return (now.rows, now.row_digest, now.row_digest_method) == (
            fp.rows,
            fp.row_digest,
            fp.row_digest_method,
        )

    ran = source.truncate_checked(dataset, [c["name"] for c in manifest.columns], unchanged)
    if ran is None:
        return None
    return fp.rows, (
        f"{ran} in the transaction that held the table against writers while its "
        f"{fp.rows} rows were read and found to be the backed-up rows (the same count and "
        "SHA-256 of the records in key order as the restore-verified backup)"
    )
