"""What is left of a backup at the source, found independently of how it was deleted.

The deletion matched rows by key (or took a locked table whole); this does not trust that
match. It reads every row left in the dataset in the backup's own line format, and streams
the backup: a backed-up row whose exact line is still there is *left*; one whose key is still
there with other values is *changed* (for keyed tables); both mean the deletion did not
happen for it. The certificate's count is what vanished: the backup's rows minus both.
Files and objects: still there with the backed-up digest (or version) means left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.deletion.objects import recorded_object
from retirement.deletion.rows import backup_records, current_lines
from retirement.formats.csv import csv_line, fields
from retirement.formats.row_bag import Matcher, RowBag
from retirement.sources.capabilities import ObjectDeleter, RowDeleter

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Source


@dataclass(frozen=True)
class Left:
    backed_up: int  # rows (or 1 for a document) in the backup
    left: int  # of them, still at the source exactly as backed up
    changed: int  # of them, whose key is still there with other values
    remaining: int  # rows at the source that are not the backup's (out of scope)

    @property
    def vanished(self) -> int:
        return self.backed_up - self.left - self.changed

    def as_dict(self) -> dict[str, int]:
        return {
            "backed_up_rows": self.backed_up,
            "scoped_left": self.left + self.changed,
            "changed_left": self.changed,
            "vanished": self.vanished,
            "remaining": self.remaining,
        }


def left_of_backup(
    source: Source, dataset: DatasetId, manifest: Manifest, cipher: Path, identities: list[Any]
) -> Left:
    rows = manifest.fingerprint.rows
    if isinstance(source, RowDeleter):
        with source.errors(f"{dataset}: counting what is left"):
            if dataset not in {r.id for r in source.datasets()}:
                return Left(rows, 0, 0, 0)  # the table was dropped
            return _table(source, dataset, manifest, cipher, identities)
    if isinstance(source, ObjectDeleter):
        held = source.holds(dataset, recorded_object(manifest))
        if held is None:
            return Left(rows, 0, 0, 0)
        if held:
            return Left(rows, rows, 0, 0)
        if manifest.format != "csv":
            return Left(rows, 0, 0, 1)  # another document under the same name
        bag = RowBag(csv_line(r) for batch in source.batches(dataset) for r in batch)
        return _match(bag, None, manifest, cipher, identities)
    raise TypeError(f"no deletion check for {type(source).__name__}")


def _table(
    source: RowDeleter, dataset: DatasetId, manifest: Manifest, cipher: Path, identities: list[Any]
) -> Left:
    names = [c["name"] for c in manifest.columns]
    index = [names.index(k) for k in manifest.fingerprint.key_columns]
    bag, keys = RowBag(), RowBag()
    with source.connect() as conn:
        for line in current_lines(source, dataset, conn):
            bag.add(line)
            if index:
                keys.add(_key_text(line, index))
    return _match(bag, keys if index else None, manifest, cipher, identities, index)


def _key_text(line: bytes, index: list[int]) -> bytes:
    parts = fields(line)
    return "\x1f".join("\x00" if parts[i][0] is None else str(parts[i][0]) for i in index).encode()


def _match(
    bag: RowBag,
    keys: RowBag | None,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    index: list[int] | None = None,
) -> Left:
    lines, by_key = Matcher(bag), Matcher(keys) if keys is not None else None
    for record in backup_records(manifest, cipher, identities):
        lines.feed(record)
        if by_key is not None and index is not None:
            by_key.feed(_key_text(record, index))
    left = lines.matched
    changed = max(0, by_key.matched - left) if by_key is not None else 0
    return Left(lines.seen, left, changed, bag.rows - left)
