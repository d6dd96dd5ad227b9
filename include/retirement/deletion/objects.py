"""Deleting files and S3 objects: exactly the backed-up bytes, nothing beside them.

The source removes the object (``sources.capabilities.ObjectDeleter``): a file only if it is
byte for byte the one backed up, reached without following a link (``FileSource``); an S3
object only as the very version that was backed up (``S3Source``). This module gives it what
the backup recorded, and for a sheet of a workbook what the backups of the other sheets
recorded (each re-checked): the workbook goes only when every sheet's backup is of it. The
certificate says that unlinking is *clear*, not *purge*.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from retirement.deletion.result import DeletionResult
from retirement.errors import DeletionRefused
from retirement.sources.capabilities import BackedUp

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.capabilities import ObjectDeleter


def recorded_object(manifest: Manifest) -> dict[str, Any]:
    """What the backup recorded of the file or object it read: size, sha256, sheets, the S3
    version. Backups of documents made before it was recorded: their own plaintext."""
    found = manifest.extra.get("source_object")
    if found:
        return dict(found)
    if manifest.format == "bytes":
        return {"size": manifest.plaintext_size, "sha256": manifest.plaintext_sha256}
    raise DeletionRefused(
        f"{manifest.dataset}: the backup does not record the digest of the file it read, so "
        "the file cannot be proven unchanged: re-run backup (a new version), its gate and the "
        "transfer"
    )


def delete_object(
    source: ObjectDeleter,
    dataset: DatasetId,
    manifest: Manifest,
    *,
    sibling: Callable[[DatasetId], Manifest],
) -> DeletionResult:
    """Remove the object holding ``dataset`` if it is still the backed-up one (for a sheet:
    the whole workbook, once every one of its sheets is backed up, verified and approved;
    ``sibling`` returns a sheet's re-checked manifest or raises DeletionRefused)."""
    recorded = recorded_object(manifest)

    def sheet(name: str) -> dict[str, Any]:
        return recorded_object(sibling(replace(dataset, sheet=name)))

    removal = source.delete_object(dataset, BackedUp(recorded, manifest.created_at, sheet))
    return DeletionResult("clear", removal.technique, removal.removed, 0, 0, note=removal.note)
