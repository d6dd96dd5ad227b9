"""S3 as a store (``destinations.store``): one PutObject for a file of one part, else a
multipart upload, resumed where an earlier attempt left one (every part whose size and MD5
equal ours is kept); parts go with their Content-MD5 (and SHA-256 where the endpoint keeps
flexible checksums) from a few threads while the caller reads and hashes the file. Also the
ETag S3 gives an upload (its MD5, or the MD5 of the part MD5s and "-N")."""

from __future__ import annotations

import base64
import hashlib
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from retirement.formats.digests import feed

if TYPE_CHECKING:
    from typing import IO

    from retirement.destinations.base import Delivery
    from retirement.destinations.s3 import S3Destination


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class SinglePut:
    """A file of one part: sent whole by PutObject when published."""

    def __init__(self, dest: S3Destination, item: Delivery, key: str) -> None:
        self.dest, self.item, self.key = dest, item, key
        self._body = bytearray()

    def keep(self, source: IO[bytes]) -> int:
        return 0

    def write(self, chunk: bytes) -> None:
        self._body += chunk

    def finish(self) -> tuple[int, int]:
        return len(self._body), 0

    def publish(self) -> str | None:
        body = bytes(self._body)
        extra = self.dest._common(self.item)
        if self.dest.checksum_algorithm == "SHA256":
            extra["ChecksumSHA256"] = _b64(hashlib.sha256(body).digest())
        md5 = hashlib.md5(body).digest()  # S3's Content-MD5
        response = self.dest.client.put_object(
            Bucket=self.dest.bucket, Key=self.key, Body=body, ContentMD5=_b64(md5), **extra
        )
        self.dest.uploaded(self.item, md5.hex())
        version: str | None = response.get("VersionId")
        return version

    def discard(self) -> None:
        self._body.clear()

    def close(self) -> None:
        self._body.clear()


class Multipart:
    """A multipart upload: parts sent as the file is read, kept where already there."""

    def __init__(self, dest: S3Destination, item: Delivery, key: str) -> None:
        self.dest, self.item, self.key = dest, item, key
        self.client, self.bucket = dest.client, dest.bucket
        self.part_size = dest.part_size_for(item)
        upload_id, self.have = unfinished_upload(self.client, self.bucket, key)
        if upload_id is None:
            extra = dest._common(item)
            if dest.checksum_algorithm:
                extra["ChecksumAlgorithm"] = dest.checksum_algorithm
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
            upload_id = created["UploadId"]
        self.upload_id: str = upload_id
        self._pending = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._sending: list[Future[None]] = []
        self._kept = 0
        self._pool = ThreadPoolExecutor(dest.concurrency, thread_name_prefix="s3-part")

    def keep(self, source: IO[bytes]) -> int:
        return 0  # kept part by part as the file is read (any part that is already there)

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        while len(self._pending) >= self.part_size:
            self._part(bytes(self._pending[: self.part_size]))
            del self._pending[: self.part_size]

    def _part(self, data: bytes) -> None:
        number = len(self._parts) + 1
        md5 = hashlib.md5(data).digest()  # S3's Content-MD5
        part: dict[str, Any] = {"PartNumber": number, "ETag": f'"{md5.hex()}"'}
        self._parts.append(part)
        if self.have.get(number) == (len(data), md5.hex()):
            self._kept += len(data)
            return
        extra = {}
        if self.dest.checksum_algorithm == "SHA256":
            extra["ChecksumSHA256"] = part["ChecksumSHA256"] = _b64(hashlib.sha256(data).digest())
        while len(self._sending) >= self.dest.concurrency:  # memory stays bounded
            done, rest = wait(self._sending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # an upload's error, raised here
            self._sending = list(rest)
        args = {"UploadId": self.upload_id, "PartNumber": number, "Body": data, **extra}
        self._sending.append(
            self._pool.submit(
                self.client.upload_part,
                Bucket=self.bucket,
                Key=self.key,
                ContentMD5=_b64(md5),
                **args,
            )
        )

    def finish(self) -> tuple[int, int]:
        if self._pending:
            self._part(bytes(self._pending))
            self._pending.clear()
        for future in self._sending:
            future.result()
        self._sending = []
        held = uploaded_parts(self.client, self.bucket, self.key, self.upload_id)
        ours = [(p["PartNumber"], p["ETag"].strip('"')) for p in self._parts]
        size = sum(held[n][0] for n, md5 in ours if n in held and held[n][1] == md5)
        return size, self._kept

    def publish(self) -> str | None:
        md5s = b"".join(bytes.fromhex(p["ETag"].strip('"')) for p in self._parts)
        self.dest.uploaded(self.item, f"{hashlib.md5(md5s).hexdigest()}-{len(self._parts)}")
        done = self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        version: str | None = done.get("VersionId")
        return version

    def discard(self) -> None:
        self.client.abort_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class S3Bucket:
    """The destination's bucket and prefix as a store, for one delivery."""

    def __init__(self, dest: S3Destination, item: Delivery) -> None:
        self.dest, self.item = dest, item
        self._uploads: list[SinglePut | Multipart] = []

    def upload(self, name: str, size: int) -> SinglePut | Multipart:
        key = self.dest.key(self.item)
        small = size <= self.dest.part_size_for(self.item)
        upload = (
            SinglePut(self.dest, self.item, key) if small else Multipart(self.dest, self.item, key)
        )
        self._uploads.append(upload)
        return upload

    def close(self) -> None:
        for upload in self._uploads:
            upload.close()


def unfinished_upload(
    client: Any, bucket: str, key: str
) -> tuple[str | None, dict[int, tuple[int, str]]]:
    """The newest unfinished upload of ``key`` and its parts (number: (size, md5))."""
    uploads = [
        u
        for u in client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
        if u["Key"] == key
    ]
    if not uploads:
        return None, {}
    upload = max(uploads, key=lambda u: u["Initiated"])
    return upload["UploadId"], uploaded_parts(client, bucket, key, upload["UploadId"])


def uploaded_parts(
    client: Any, bucket: str, key: str, upload_id: str
) -> dict[int, tuple[int, str]]:
    """The parts the server holds for an unfinished upload (number: (size, md5))."""
    parts: dict[int, tuple[int, str]] = {}
    marker = 0
    while True:
        page = client.list_parts(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
        )
        for p in page.get("Parts", []):
            parts[p["PartNumber"]] = (p["Size"], p["ETag"].strip('"'))
        if not page.get("IsTruncated"):
            break
        marker = page["NextPartNumberMarker"]
    return parts


def upload_etag(item: Delivery, part_size: int) -> str:
    """The ETag of ``item`` uploaded whole (size <= ``part_size``) or in parts of that size."""
    if item.size <= part_size:
        return _md5_file(item, 0, item.size)
    digests = b"".join(
        bytes.fromhex(_md5_file(item, off, min(part_size, item.size - off)))
        for off in range(0, item.size, part_size)
    )
    count = -(-item.size // part_size)
    return f"{hashlib.md5(digests).hexdigest()}-{count}"


def _md5_file(item: Delivery, offset: int, length: int) -> str:
    h = hashlib.md5()  # S3's ETag
    with item.path.open("rb") as f:
        f.seek(offset)
        feed(f, h, length)
    return h.hexdigest()
