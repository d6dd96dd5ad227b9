"""What the S3 source and the S3 destination both do to objects of a bucket: read an object's
head (None where it, or the version asked for, is not there) and delete exactly one version.

botocore's errors other than "not there" pass through: each caller translates them into its
own error (SourceError, TransferError) naming what it was doing.
"""

from __future__ import annotations

from typing import Any

GONE = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")


def head(client: Any, bucket: str, key: str, version_id: str | None = None, **extra: Any) -> Any:
    """HeadObject of ``key`` (of ``version_id`` where given); None where it is not there."""
    from botocore.exceptions import ClientError

    args = {"VersionId": version_id} if version_id else {}
    try:
        return client.head_object(Bucket=bucket, Key=key, **args, **extra)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in GONE:
            return None
        raise


def delete_version(client: Any, bucket: str, key: str, version_id: str | None) -> None:
    """Delete exactly ``version_id`` of ``key`` (the object itself where the bucket keeps no
    versions)."""
    args = {"VersionId": version_id} if version_id else {}
    client.delete_object(Bucket=bucket, Key=key, **args)


def versions(client: Any, bucket: str, key: str) -> list[str]:
    """Every version id (and delete marker) of exactly ``key``, not of keys it begins."""
    found = []
    pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
    for page in pages:
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if entry["Key"] == key:
                found.append(entry["VersionId"])
    return found
