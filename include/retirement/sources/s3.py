"""Objects under an S3 prefix, read like files: tables by extension, all else documents.

Takes a boto3 S3 client (the DAG layer builds it from an Airflow connection). Objects are
read with ranged GETs through a seekable reader, so Parquet and XLSX work without a local
copy: no plaintext customer data is written to disk. Every GET names the version the source
first saw (a versioned bucket) or its ETag (``If-Match``, an unversioned one), so all reads
of a backup are of one and the same object, or the read fails with ObjectChanged.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from retirement.connect import s3objects
from retirement.errors import DeletionRefused, ObjectChanged, SourceError
from retirement.sources.capabilities import BackedUp, ObjectRemoval, PinnedObject
from retirement.sources.files import TabularObjects

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from retirement.sources.base import Named

RANGE_BYTES = 4 * 1024 * 1024


class S3RangeReader(io.RawIOBase):
    """A seekable, read-only view of one S3 object version, fetched by byte ranges."""

    def __init__(
        self, client: Any, bucket: str, key: str, size: int, version: str | None, etag: str
    ) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._size, self._version, self._pos = size, version, 0
        # an unversioned bucket: only the object with this ETag (an overwrite fails the GET)
        self._pin = {"VersionId": version} if version else {"IfMatch": f'"{etag}"'}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: Any) -> int:
        if self._pos >= self._size:
            return 0
        end = min(self._pos + len(buf), self._size) - 1
        try:
            body = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}", **self._pin
            )["Body"]
            data = body.read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectChanged(
                    f"s3://{self._bucket}/{self._key}: the object was replaced while it was "
                    "read; nothing was kept: re-run the backup when it is no longer written"
                ) from exc
            raise SourceError(f"s3://{self._bucket}/{self._key}: read failed: {exc}") from exc
        except BotoCoreError as exc:
            raise SourceError(f"s3://{self._bucket}/{self._key}: read failed: {exc}") from exc
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


class S3Source(TabularObjects):
    """Every object under ``s3://bucket/prefix``: an ObjectSource and ObjectDeleter
    (``sources.capabilities``). Deletion removes exactly the version that was backed up
    (its version id, size and ETag checked first); older and newer versions were never
    backed up and stay."""

    def __init__(
        self,
        name: str,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(name, include=include, exclude=exclude)
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self._meta: dict[str, tuple[int, str | None, str]] = {}

    def _objects(self) -> list[tuple[str, int]]:
        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue
                    name = obj["Key"][len(self.prefix) :]
                    out.append((name, obj["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(
                f"source {self.name}: cannot list s3://{self.bucket}/{self.prefix}: {exc}"
            ) from exc
        return sorted(out)

    def _head(self, path: str) -> tuple[int, str | None, str]:
        if path not in self._meta:
            key = self.prefix + path
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                raise SourceError(f"source {self.name}: s3://{self.bucket}/{key}: {exc}") from exc
            version = head.get("VersionId")
            self._meta[path] = (
                head["ContentLength"],
                None if version in (None, "null") else version,
                head.get("ETag", "").strip('"'),
            )
        return self._meta[path]

    def _open(self, path: str) -> IO[bytes]:
        size, version, etag = self._head(path)
        raw = S3RangeReader(self.client, self.bucket, self.prefix + path, size, version, etag)
        return io.BufferedReader(raw, buffer_size=RANGE_BYTES)

    def byte_size(self, dataset: Named) -> int | None:
        return self._head(self._split(dataset)[0])[0]

    @contextmanager
    def pinned(self, dataset: Named) -> Iterator[PinnedObject]:
        """Every read of this source already names one version (or ETag) of the object."""
        yield _PinnedS3(self, dataset)

    def object_state(self, dataset: Named) -> dict[str, object]:
        """The object's key, the version every read of this source uses, its size and ETag,
        and a workbook's sheets."""
        path = self._split(dataset)[0]
        size, version, etag = self._head(path)
        state: dict[str, object] = {
            "key": self.prefix + path,
            "version_id": version,
            "size": size,
            "etag": etag,
        }
        if path.lower().endswith(".xlsx"):
            with self._open(path) as raw:
                state["sheets"] = self._sheets_of(raw, path)
        return state

    # ------------------------------------------------------------------ deletion

    def _head_version(self, where: str, key: str, version: str | None) -> Any:
        try:
            return s3objects.head(self.client, self.bucket, key, version)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{where}: s3://{self.bucket}/{key}: {exc}") from exc

    def holds(self, dataset: Named, recorded: Mapping[str, Any]) -> bool | None:
        ds = self.id_of(dataset)
        key = self.prefix + ds.object
        head = self._head_version(str(ds), key, recorded.get("version_id"))
        if head is None:
            return None
        return bool(head.get("ETag", "").strip('"') == recorded.get("etag"))

    def _null_version(self, where: str, key: str) -> str:
        """The object read without a version id is its "null" version, which only a bucket
        that keeps versions now deletes exactly: there a new write makes a new version and
        leaves it alone; without versions (or with them suspended) a write between the check
        and DeleteObject would be deleted in its place (RadosGW ignores a condition on
        DeleteObject). DeletionRefused otherwise."""
        status = _versioning(self.client, self.bucket, where)
        if status != "Enabled":
            raise DeletionRefused(
                f"{where}: s3://{self.bucket} keeps no versions (versioning "
                f"{(status or 'never enabled').lower()}), so s3://{self.bucket}/{key} cannot be "
                "deleted exactly: an object written between the check and the delete would be "
                "deleted in its place; nothing was deleted. Enable versioning on the bucket "
                "and re-run the deletion"
            )
        return "null"

    def delete_object(self, dataset: Named, backed_up: BackedUp) -> ObjectRemoval:
        ds, recorded = self.id_of(dataset), backed_up.state
        key = self.prefix + ds.object
        version = recorded.get("version_id")
        if recorded.get("key") not in (None, key) or "etag" not in recorded:
            raise DeletionRefused(
                f"{ds}: the backup does not record which version of s3://{self.bucket}/{key} "
                "it holds: re-run backup (a new version), its gate and the transfer"
            )
        for sheet in recorded.get("sheets") or ():
            other = backed_up.sheet(sheet) if sheet != ds.sheet else recorded
            if (other.get("version_id"), other.get("etag")) != (version, recorded["etag"]):
                raise DeletionRefused(
                    f"{ds}: sheet {sheet!r} was backed up from another version of the object"
                )
        version = version or self._null_version(str(ds), key)
        head = self._head_version(str(ds), key, version)
        if head is None:
            return ObjectRemoval(0, "DeleteObject (the version was already gone)")
        if (head.get("ContentLength"), head.get("ETag", "").strip('"')) != (
            recorded["size"],
            recorded["etag"],
        ):
            raise DeletionRefused(
                f"{ds}: s3://{self.bucket}/{key} is not the version backed up (ETag "
                f"{head.get('ETag')} now, {recorded['etag']} then): nothing was deleted"
            )
        try:
            s3objects.delete_version(self.client, self.bucket, key, version)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"{ds}: deleting s3://{self.bucket}/{key} failed: {exc}") from exc
        which = f"version {version}"
        return ObjectRemoval(
            1,
            f"DeleteObject of exactly {which} that was backed up (size and ETag checked "
            "first); other versions were not backed up and were not touched",
        )


def _versioning(client: Any, bucket: str, where: str) -> str | None:
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except (ClientError, BotoCoreError) as exc:
        raise SourceError(f"{where}: s3://{bucket}: reading its versioning failed: {exc}") from exc
    return status if isinstance(status, str) else None


class _PinnedS3:
    """``S3Source.pinned``'s answer: the object's size and, at the end, its state."""

    def __init__(self, source: S3Source, dataset: Named) -> None:
        self._source, self._dataset = source, dataset
        self.size: int | None = source.byte_size(dataset)

    def state(self, document: tuple[int, str] | None = None) -> dict[str, object]:
        state = self._source.object_state(self._dataset)
        if document is not None and document[0] != state["size"]:
            raise ObjectChanged(
                f"{self._dataset}: {document[0]} bytes read, the object has {state['size']}"
            )
        return state
