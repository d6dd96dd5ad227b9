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

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from retirement.destinations.base import (
    Delivery,
    Destination,
    Receipt,
    expect,
    replaced_note,
    utc_now,
)
from retirement.destinations.s3_parts import unfinished_upload, upload_etag
from retirement.errors import IntegrityError, SourceError, TransferError
from retirement.formats.digests import CHUNK

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.connect.info import ConnectionInfo

MIB = 1 << 20
PART_SIZE = 16 * MIB
MAX_PARTS = 10_000


class S3Destination(Destination):
    kind = "s3"

    def __init__(
        self,
        name: str,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = PART_SIZE,
        concurrency: int = 4,
        sse: str | None = "AES256",
        checksum_algorithm: str | None = None,
        read_back: bool = False,
    ) -> None:
        super().__init__(name)
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.part_size, self.concurrency = part_size, concurrency
        self.sse, self.checksum_algorithm, self.read_back = sse, checksum_algorithm, read_back
        self._lock_enabled: bool | None = None
        self._etags: dict[str, str] = {}  # sha256 -> ETag computed while uploading

    @classmethod
    def from_connection(
        cls, name: str, conn: ConnectionInfo, *, bucket: str, prefix: str = ""
    ) -> S3Destination:
        from retirement.connect.s3client import s3_client

        extra = conn.extra
        sse = extra.get("server_side_encryption", "AES256")
        algorithm = extra.get("checksum_algorithm")
        if algorithm is None and not extra.get("endpoint_url"):
            algorithm = "SHA256"  # AWS S3 itself stores flexible checksums
        try:
            client = s3_client(conn)
        except SourceError as exc:
            raise TransferError(f"destination {name}: {exc}") from exc
        return cls(
            name,
            client,
            bucket,
            prefix,
            part_size=int(extra.get("part_size_mb", PART_SIZE // MIB)) * MIB,
            concurrency=int(extra.get("max_concurrency", 4)),
            sse=None if str(sse).lower() in ("", "none", "false") else str(sse),
            checksum_algorithm=(str(algorithm).upper() if algorithm else None),
            read_back=str(extra.get("verify_read_back", "false")).lower() == "true",
        )

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

    def deliver(self, item: Delivery, *, on_bytes: Callable[[int], None] | None = None) -> Receipt:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(item)
        try:
            current = self._head(key)
            replaced = current is not None
            if current and current.get("Metadata", {}).get("sha256") == item.sha256:
                try:
                    return self._retain(item, self.verify(item))  # delivered before
                except IntegrityError:
                    pass  # altered since: sent again as a new version
            part_size = max(self.part_size, -(-item.size // MAX_PARTS))
            if item.size <= part_size:
                version, resumed = self._put(item, key), 0
                if on_bytes:
                    on_bytes(item.size)
            else:
                version, resumed = self._multipart(item, key, part_size, on_bytes)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"upload of {key}", exc) from exc
        receipt = self.verify(item, {"version_id": version} if version else None)
        receipt = replaced_note(Receipt(**{**receipt.as_dict(), "resumed_from": resumed}), replaced)
        return self._retain(item, receipt)

    def _common(self, item: Delivery) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Metadata": {**item.metadata, "sha256": item.sha256, "size": str(item.size)}
        }
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        return args

    def _put(self, item: Delivery, key: str) -> str | None:
        body = item.path.read_bytes()
        extra = self._common(item)
        if self.checksum_algorithm == "SHA256":
            extra["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(body).digest()).decode()
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
            **extra,
        )
        version: str | None = response.get("VersionId")
        return version

    def _multipart(
        self,
        item: Delivery,
        key: str,
        part_size: int,
        on_bytes: Callable[[int], None] | None,
    ) -> tuple[str | None, int]:
        count = -(-item.size // part_size)
        upload_id, have = unfinished_upload(self.client, self.bucket, key)
        if upload_id is None:
            extra = self._common(item)
            if self.checksum_algorithm:
                extra["ChecksumAlgorithm"] = self.checksum_algorithm
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)[
                "UploadId"
            ]
        fd = os.open(item.path, os.O_RDONLY)
        try:

            def send(number: int) -> dict[str, Any]:
                offset = (number - 1) * part_size
                data = os.pread(fd, min(part_size, item.size - offset), offset)
                md5 = hashlib.md5(data).digest()  # S3's Content-MD5
                part: dict[str, Any] = {"PartNumber": number, "ETag": f'"{md5.hex()}"'}
                if have.get(number) == (len(data), md5.hex()):
                    return {**part, "kept": len(data)}
                extra = {}
                if self.checksum_algorithm == "SHA256":
                    extra["ChecksumSHA256"] = part["ChecksumSHA256"] = base64.b64encode(
                        hashlib.sha256(data).digest()
                    ).decode()
                self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=base64.b64encode(md5).decode(),
                    **extra,
                )
                if on_bytes:
                    on_bytes(len(data))
                return part

            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part") as pool:
                parts = list(pool.map(send, range(1, count + 1)))
        finally:
            os.close(fd)
        resumed = sum(p.pop("kept", 0) for p in parts)
        md5s = b"".join(bytes.fromhex(p["ETag"].strip('"')) for p in parts)
        self._etags[item.sha256] = f"{hashlib.md5(md5s).hexdigest()}-{count}"
        done = self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return done.get("VersionId"), resumed

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
        removed = 0
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=key
            )
            for page in pages:
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if entry["Key"] == key:
                        self.client.delete_object(
                            Bucket=self.bucket, Key=key, VersionId=entry["VersionId"]
                        )
                        removed += 1
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"deleting {key}", exc) from exc
        return removed

    # ------------------------------------------------------------------ verify

    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        args = {"VersionId": version_id} if version_id else {}
        if self.checksum_algorithm:
            args["ChecksumMode"] = "ENABLED"
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key, **args)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def expected_etag(self, item: Delivery) -> str:
        """The ETag S3 gives our upload: the MD5, or MD5-of-part-MD5s "-N" for multipart."""
        if item.sha256 in self._etags:
            return self._etags[item.sha256]
        return upload_etag(item, max(self.part_size, -(-item.size // MAX_PARTS)))

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
        for chunk in body.iter_chunks(CHUNK):
            h.update(chunk)
        return h.hexdigest()
