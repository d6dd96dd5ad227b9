"""Deleting files and S3 objects: exactly the backed-up bytes, nothing beside them.

* **A file** is opened through its folders one by one from the source root, never following
  a symbolic link (``O_NOFOLLOW`` at each step, ``openat``-style), so a folder swapped for a
  link between two attempts cannot lead the deletion outside the root. The whole file is
  hashed through that descriptor and must have the size and SHA-256 the backup recorded;
  it is unlinked (through its folder's descriptor) only if it is still that same inode,
  unchanged. A workbook is one file for all its sheets: it is unlinked only when every
  sheet it had was backed up, verified and approved, and the file is still byte for byte
  the one backed up. The certificate says that unlinking is *clear*, not *purge*.
* **An S3 object** loses exactly the version that was backed up (its version id, size and
  ETag checked first); older and newer versions were never backed up and stay.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from retirement.deletion.result import DeletionResult
from retirement.errors import DeletionRefused, SourceError
from retirement.formats.digests import hash_fd
from retirement.sources.files import open_inside

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.files import FileSource
    from retirement.sources.s3 import S3Source

UNLINK_NOTE = (
    "Unlinking is 'clear', not 'purge': on SSDs and copy-on-write filesystems the blocks may "
    "survive until reused; the backup copy is what gets a cryptographic erase"
)


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


# ---------------------------------------------------------------------- files


def _open(source: FileSource, dataset: DatasetId) -> Any:
    try:
        return open_inside(source.root, dataset.object, where=str(dataset))
    except SourceError as exc:
        raise DeletionRefused(f"{exc}; nothing was deleted") from exc


def file_digest(source: FileSource, dataset: DatasetId) -> tuple[int, str] | None:
    """(size, sha256) of the dataset's file, read without following links; None if absent."""
    opened = _open(source, dataset)
    if opened is None:
        return None
    try:
        return hash_fd(opened.fd)
    finally:
        opened.close()


def delete_file(
    source: FileSource,
    dataset: DatasetId,
    manifest: Manifest,
    *,
    sibling: Callable[[DatasetId], Manifest],
) -> DeletionResult:
    """Unlink the dataset's file if it is byte for byte the backed-up one (for a sheet: the
    whole workbook, once every one of its sheets is backed up, verified and approved;
    ``sibling`` returns a sheet's re-checked manifest or raises DeletionRefused)."""
    recorded = recorded_object(manifest)
    opened = _open(source, dataset)
    if opened is None:
        return DeletionResult("clear", "unlink (already gone: an earlier attempt)", 0, 0, 0)
    try:
        before = os.fstat(opened.fd)
        size, sha = hash_fd(opened.fd)
        if (size, sha) != (recorded["size"], recorded["sha256"]):
            raise DeletionRefused(
                f"{dataset}: the file is not the one backed up ({size} bytes, sha256 {sha[:12]}… "
                f"now; {recorded['size']} bytes, {recorded['sha256'][:12]}… at the backup of "
                f"{manifest.created_at}): nothing was deleted. Re-run backup (a new version), "
                "its gate and the transfer"
            )
        for sheet in recorded.get("sheets") or ():
            if sheet == dataset.sheet:
                continue
            other = sibling(_with_sheet(dataset, sheet))
            if recorded_object(other).get("sha256") != sha:
                raise DeletionRefused(
                    f"{dataset}: sheet {sheet!r} of the same workbook was backed up from another "
                    "version of the file: the workbook is not deleted until every sheet's backup "
                    "is of this very file"
                )
        after = os.fstat(opened.fd)
        now = os.stat(opened.leaf, dir_fd=opened.folder, follow_symlinks=False)
        same = (now.st_ino, now.st_dev) == (after.st_ino, after.st_dev)
        if not same or (before.st_size, before.st_mtime_ns) != (now.st_size, now.st_mtime_ns):
            raise DeletionRefused(
                f"{dataset}: the file changed while it was checked; nothing deleted"
            )
        os.unlink(opened.leaf, dir_fd=opened.folder)
    finally:
        opened.close()
    what = "unlink of the workbook (every sheet backed up)" if recorded.get("sheets") else "unlink"
    return DeletionResult(
        "clear", f"{what}, after its sha256 equalled the backup's", 1, 0, 0, note=UNLINK_NOTE
    )


def _with_sheet(dataset: DatasetId, sheet: str) -> DatasetId:
    from dataclasses import replace

    return replace(dataset, sheet=sheet)


# ---------------------------------------------------------------------- S3


def delete_s3_version(
    source: S3Source,
    dataset: DatasetId,
    manifest: Manifest,
    *,
    sibling: Callable[[DatasetId], Manifest],
) -> DeletionResult:
    """Delete exactly the object version the backup read (size and ETag checked first)."""
    from botocore.exceptions import BotoCoreError, ClientError

    recorded = recorded_object(manifest)
    key = source.prefix + dataset.object
    version = recorded.get("version_id")
    if recorded.get("key") not in (None, key) or "etag" not in recorded:
        raise DeletionRefused(
            f"{dataset}: the backup does not record which version of s3://{source.bucket}/{key} "
            "it holds: re-run backup (a new version), its gate and the transfer"
        )
    for sheet in recorded.get("sheets") or ():
        if sheet != dataset.sheet:
            other = recorded_object(sibling(_with_sheet(dataset, sheet)))
            if (other.get("version_id"), other.get("etag")) != (version, recorded["etag"]):
                raise DeletionRefused(
                    f"{dataset}: sheet {sheet!r} was backed up from another version of the object"
                )
    args = {"VersionId": version} if version else {}
    try:
        head = source.client.head_object(Bucket=source.bucket, Key=key, **args)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "404",
            "NoSuchKey",
            "NotFound",
            "NoSuchVersion",
        ):
            return DeletionResult("clear", "DeleteObject (the version was already gone)", 0, 0, 0)
        raise SourceError(f"{dataset}: s3://{source.bucket}/{key}: {exc}") from exc
    except BotoCoreError as exc:
        raise SourceError(f"{dataset}: s3://{source.bucket}/{key}: {exc}") from exc
    if (head.get("ContentLength"), head.get("ETag", "").strip('"')) != (
        recorded["size"],
        recorded["etag"],
    ):
        raise DeletionRefused(
            f"{dataset}: s3://{source.bucket}/{key} is not the version backed up (ETag "
            f"{head.get('ETag')} now, {recorded['etag']} then): nothing was deleted"
        )
    try:
        source.client.delete_object(Bucket=source.bucket, Key=key, **args)
    except (ClientError, BotoCoreError) as exc:
        raise SourceError(f"{dataset}: deleting s3://{source.bucket}/{key} failed: {exc}") from exc
    which = f"version {version}" if version else "the object (the bucket keeps no versions)"
    return DeletionResult(
        "clear",
        f"DeleteObject of exactly {which} that was backed up (size and ETag checked first); "
        "other versions were not backed up and were not touched",
        1,
        0,
        0,
    )
