"""S3 delivery with boto3: TLS verified, multipart with Content-MD5 per part, resumable,
Object Lock for retained archives, verified from HeadObject.

Written for any S3 endpoint (AWS S3, MinIO, Ceph RadosGW) and proven against RadosGW:

* Every part (and every single-part object) is sent with its Content-MD5, which the server
  checks before it stores the part; where the connection says the endpoint supports
  flexible checksums (``extra.checksum_algorithm: SHA256``, AWS S3) a SHA-256 of every part
  goes along too. Our own SHA-256 of the file is always stored as metadata
  (``x-amz-meta-sha256``): a multipart ETag is not a digest of the object.
* An interrupted multipart upload is resumed: its parts are listed and every part whose
  size and ETag (its MD5) equal ours is kept; the others are sent again.
* Verification reads HeadObject of the current version: size, our SHA-256 in the metadata,
  the ETag recomputed from the parts' MD5s, and, where a receipt names a version, that it is
  still the current one. ``extra.verify_read_back: true`` also downloads and hashes it.
* Retained archives are put under Object Lock COMPLIANCE until their retention end where
  the bucket has Object Lock; the receipt records the mode and date the server reports.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from retirement.connect import s3objects
from retirement.destinations.base import Delivery, Destination, Receipt, expect, utc_now
from retirement.destinations.s3_parts import S3Bucket, upload_etag
from retirement.errors import IntegrityError, SourceError, TransferError
from retirement.formats.digests import feed

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.connect.info import ConnectionInfo

MIB = 1 << 20
PART_SIZE = 16 * MIB
MAX_PARTS = 10_000


@dataclass(frozen=True)
class S3Options:
    """How a destination uses its endpoint (from the connection's extra)."""

    part_size: int = PART_SIZE
    concurrency: int = 4
    sse: str | None = "AES256"  # server-side encryption asked for
    checksum_algorithm: str | None = None  # flexible checksums, where the endpoint keeps them
    read_back: bool = False  # verify by downloading and hashing

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> S3Options:
        sse = extra.get("server_side_encryption", "AES256")
        algorithm = extra.get("checksum_algorithm")
        if algorithm is None and not extra.get("endpoint_url"):
            algorithm = "SHA256"  # AWS S3 itself stores flexible checksums
        return cls(
            part_size=int(extra.get("part_size_mb", PART_SIZE // MIB)) * MIB,
            concurrency=int(extra.get("max_concurrency", 4)),
            sse=None if str(sse).lower() in ("", "none", "false") else str(sse),
            checksum_algorithm=(str(algorithm).upper() if algorithm else None),
            read_back=str(extra.get("verify_read_back", "false")).lower() == "true",
        )


class S3Destination(Destination):
    kind = "s3"

    def __init__(self, name: str, client: Any, where: tuple[str, str], options: S3Options) -> None:
        """``where``: the bucket and the prefix (folder) objects are put under."""
        super().__init__(name)
        self.client, self.bucket, self.prefix = client, where[0], where[1].strip("/")
        self.part_size, self.concurrency = options.part_size, options.concurrency
        self.sse, self.checksum_algorithm = options.sse, options.checksum_algorithm
        self.read_back = options.read_back
        self._lock_enabled: bool | None = None
        self._etags: dict[str, str] = {}  # sha256 -> ETag computed while uploading

    @classmethod
    def from_connection(
        cls, name: str, conn: ConnectionInfo, *, bucket: str, prefix: str = ""
    ) -> S3Destination:
        from retirement.connect.s3client import s3_client

        try:
            client = s3_client(conn)
        except SourceError as exc:
            raise TransferError(f"destination {name}: {exc}") from exc
        return cls(name, client, (bucket, prefix), S3Options.from_extra(conn.extra))

    @property
    def where(self) -> str:
        return f"{self.name} (s3://{self.bucket}/{self.prefix})"

    def key(self, item: Delivery) -> str:
        return f"{self.prefix}/{item.name}" if self.prefix else item.name

    # ------------------------------------------------------------------ errors

    def _fail(self, doing: str, exc: Exception) -> TransferError:
        from botocore.exceptions import ClientError, EndpointConnectionError, SSLError

        if isinstance(exc, SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            why = (
                f"TLS verification failed ({exc}): the server's certificate is not signed "
                "by the CA bundle in the connection's extra.verify"
            )
        elif isinstance(exc, EndpointConnectionError):
            why = f"the endpoint cannot be reached after the configured retries ({exc})"
        elif isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            why = f"{err.get('Code')}: {err.get('Message') or exc}"
        else:
            why = str(exc)
        return TransferError(f"{self.where}: {doing} failed: {why}")

    # ------------------------------------------------------------------ deliver

    def published(self, item: Delivery) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._head(self.key(item)) is not None
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"upload of {self.key(item)}", exc) from exc

    @contextmanager
    def store(self, item: Delivery) -> Iterator[S3Bucket]:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = S3Bucket(self, item)
        try:
            yield bucket
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"upload of {self.key(item)}", exc) from exc
        finally:
            bucket.close()

    def accepted(self, item: Delivery, receipt: Receipt) -> Receipt:
        return self._retain(item, receipt)

    def _common(self, item: Delivery) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Metadata": {**item.metadata, "sha256": item.sha256, "size": str(item.size)}
        }
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        return args

    # ------------------------------------------------------------------ lock

    def _bucket_has_lock(self) -> bool:
        from botocore.exceptions import ClientError

        if self._lock_enabled is None:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                state = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._lock_enabled = state == "Enabled"
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in (
                    "ObjectLockConfigurationNotFoundError",
                    "ObjectLockConfigurationNotFound",
                ):
                    raise
                self._lock_enabled = False
        return self._lock_enabled

    def _retain(self, item: Delivery, receipt: Receipt) -> Receipt:
        """Object Lock COMPLIANCE until ``item.retain_until`` where the bucket has it."""
        from botocore.exceptions import BotoCoreError, ClientError

        if item.retain_until is None:
            return receipt
        try:
            if not self._bucket_has_lock():
                lock = {"mode": "none", "reason": f"bucket {self.bucket} has no Object Lock"}
                return Receipt(**{**receipt.as_dict(), "lock": lock})
            until = datetime.combine(item.retain_until, time(0), tzinfo=UTC)
            key = self.key(item)
            version = {"VersionId": receipt.version_id} if receipt.version_id else {}
            head = self.client.head_object(Bucket=self.bucket, Key=key, **version)
            held = head.get("ObjectLockRetainUntilDate")
            if head.get("ObjectLockMode") != "COMPLIANCE" or held is None or held < until:
                self.client.put_object_retention(
                    Bucket=self.bucket,
                    Key=key,
                    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
                    **version,
                )
            head = self.client.head_object(Bucket=self.bucket, Key=key, **version)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"Object Lock on {self.key(item)}", exc) from exc
        mode = head.get("ObjectLockMode")
        date_ = head.get("ObjectLockRetainUntilDate")
        if mode != "COMPLIANCE" or date_ is None or date_ < until:
            raise IntegrityError(
                f"{self.where}: {self.key(item)} is not locked in COMPLIANCE mode until "
                f"{until.date()} (the server reports {mode} until {date_})"
            )
        lock = {"mode": mode, "retain_until": date_.astimezone(UTC).isoformat()}
        return Receipt(**{**receipt.as_dict(), "lock": lock})

    def delete(self, name: str) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}/{name}" if self.prefix else name
        try:
            found = s3objects.versions(self.client, self.bucket, key)
            for version in found:
                s3objects.delete_version(self.client, self.bucket, key, version)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"deleting {key}", exc) from exc
        return len(found)

    # ------------------------------------------------------------------ verify

    def _head(self, key: str) -> dict[str, Any] | None:
        extra = {"ChecksumMode": "ENABLED"} if self.checksum_algorithm else {}
        head: dict[str, Any] | None = s3objects.head(self.client, self.bucket, key, **extra)
        return head

    def expected_etag(self, item: Delivery) -> str:
        """The ETag S3 gives our upload: the MD5, or MD5-of-part-MD5s "-N" for multipart."""
        if item.sha256 in self._etags:
            return self._etags[item.sha256]
        return upload_etag(item, self.part_size_for(item))

    def part_size_for(self, item: Delivery) -> int:
        """The connection's part size, or larger where the file needs over 10,000 parts."""
        return max(self.part_size, -(-item.size // MAX_PARTS))

    def uploaded(self, item: Delivery, etag: str) -> None:
        """Remember the ETag computed while ``item`` was sent (verify need not read it)."""
        self._etags[item.sha256] = etag

    def verify(self, item: Delivery, receipt: dict[str, Any] | None = None) -> Receipt:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(item)
        where = f"s3://{self.bucket}/{key}"
        try:
            head = self._head(key)
            if head is None:
                raise IntegrityError(f"{self.where}: {where} is missing")
            version = head.get("VersionId")
            if version == "null":
                version = None
            wanted = (receipt or {}).get("version_id")
            if wanted and version != wanted:
                raise IntegrityError(
                    f"{self.where}: {where} was replaced: the current version is {version}, "
                    f"the delivery made version {wanted}"
                )
            etag = head.get("ETag", "").strip('"')
            meta_sha = head.get("Metadata", {}).get("sha256", "")
            method = "HeadObject: size, ETag (MD5 of each part, sent with Content-MD5), sha256 "
            method += "in x-amz-meta-sha256"
            sha = meta_sha if etag == self.expected_etag(item) else f"(ETag {etag} differs)"
            if self.read_back:
                sha = self._download_sha256(key, version)
                method = "downloaded and hashed (sha256)"
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"verification of {key}", exc) from exc
        expect(item, where, head["ContentLength"], sha)
        return Receipt(
            destination=self.name,
            kind=self.kind,
            location=where + (f"?versionId={version}" if version else ""),
            name=item.name,
            size=head["ContentLength"],
            sha256=item.sha256,
            verified_at=utc_now(),
            method=method,
            version_id=version,
            encryption=head.get("ServerSideEncryption") or "not reported by the endpoint",
        )

    def _download_sha256(self, key: str, version: str | None) -> str:
        args = {"VersionId": version} if version else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **args)["Body"]
        h = hashlib.sha256()
        feed(body, h)
        return h.hexdigest()
