"""S3 multipart bookkeeping: the unfinished upload a delivery resumes, and the ETag S3 gives
an upload (its MD5, or the MD5 of the part MD5s and "-N"), computed from the local file."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from retirement.formats.digests import CHUNK

if TYPE_CHECKING:
    from retirement.destinations.base import Delivery


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
    parts: dict[int, tuple[int, str]] = {}
    marker = 0
    while True:
        page = client.list_parts(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumberMarker=marker
        )
        for p in page.get("Parts", []):
            parts[p["PartNumber"]] = (p["Size"], p["ETag"].strip('"'))
        if not page.get("IsTruncated"):
            break
        marker = page["NextPartNumberMarker"]
    return upload["UploadId"], parts


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
        left = length
        while left and (chunk := f.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()
