"""Deleting every row of a table at once, in one transaction that holds the rows against
writers while they are found to be exactly the backed-up rows (the scheme:
``deletion.tables``; the locks, and when it is declined: the source's ``TableEmptier``,
PostgreSQL's TRUNCATE in ``sources.pg_truncate``, MySQL/MariaDB's DELETE in
``sources.mysql_empty``).

Why the check is enough. The manifest is the one the chain recorded (its SHA-256 and
signature checked again by ``recheck_backup`` just before), and it records the backup's row
count and the SHA-256 of its records in key order (``sha256-key-order``; for
``sha256-plaintext`` of its header line and those records); gate_backup restore-verified
that the age file, whose SHA-256 ``recheck_backup`` found unchanged, holds exactly those
records. The table's records, read while held in the same order and format,
give the same count and SHA-256, and CSV records delimit themselves: the table holds exactly
the backed-up rows, and no writer can change that before the transaction commits. A backup
with the order-independent digest (``sha256-sum``) is not emptied this way: its table is
deleted by batches, each row compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from retirement.formats.csv import KEY_ORDER_METHOD, ORDERED_METHODS, PLAINTEXT_METHOD
from retirement.sources.base import Source
from retirement.sources.capabilities import TableEmptier

if TYPE_CHECKING:
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named


# What each key-order row digest hashes, as a certificate says it.
_HASHED = {
    KEY_ORDER_METHOD: "the records in key order",
    PLAINTEXT_METHOD: "the header line and the records in key order",
}


def empty_unchanged(source: object, dataset: Named, manifest: Manifest) -> Emptying | None:
    """Empty the table at once if, while its rows are held against writers, they are the
    backed-up rows: what was done, or None when nothing was."""
    fp = manifest.fingerprint
    if (
        not isinstance(source, TableEmptier)
        or not isinstance(source, Source)
        or fp.row_digest_method not in ORDERED_METHODS
        or source.count(dataset) != fp.rows  # a table kept in part: not even tried
    ):
        return None
    from retirement.vault.write import fingerprint_now

    def unchanged() -> bool:
        if source.count(dataset) != fp.rows:
            return False
        now = fingerprint_now(source, dataset, "table", fp.key_columns, fp.row_digest_method)
        return (now.rows, now.row_digest, now.row_digest_method) == (
            fp.rows,
            fp.row_digest,
            fp.row_digest_method,
        )

    columns = [c["name"] for c in manifest.columns]
    emptied = source.empty_checked(dataset, columns, fp.rows, unchanged)
    if emptied is None:
        return None
    hashed = _HASHED.get(fp.row_digest_method, fp.row_digest_method)
    how = (
        f"{emptied.ran}, in the transaction that held the table's rows against writers while "
        f"they were read and found to be the backed-up rows (the same count, {fp.rows}, and "
        f"SHA-256 of {hashed} as the restore-verified backup)"
    )
    return Emptying(fp.rows, how, emptied.new_files)


@dataclass(frozen=True)
class Emptying:
    """A table emptied at once: rows deleted, how (for the certificate), and whether its
    files are new (nothing to reclaim)."""

    deleted: int
    technique: str
    new_files: bool
