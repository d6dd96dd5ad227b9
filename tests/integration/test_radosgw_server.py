"""The S3 test server is real: HTTPS verified against its CA, multipart, Object Lock, versions."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.exceptions
import pytest

from tests.servers.radosgw import RadosGW
from tests.servers.tls import make_test_ca

pytestmark = pytest.mark.integration


def test_put_get_over_https(radosgw: RadosGW, s3_bucket: str) -> None:
    client = radosgw.client()
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body="客户数据".encode())
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == "客户数据".encode()
    assert radosgw.endpoint_url.startswith("https://")


def test_multipart_upload(radosgw: RadosGW, s3_bucket: str) -> None:
    client = radosgw.client()
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1024)]
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key="big.bin")
    done = [
        {
            "PartNumber": n,
            "ETag": client.upload_part(
                Bucket=s3_bucket,
                Key="big.bin",
                PartNumber=n,
                UploadId=upload["UploadId"],
                Body=body,
            )["ETag"],
        }
        for n, body in enumerate(parts, 1)
    ]
    client.complete_multipart_upload(
        Bucket=s3_bucket,
        Key="big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )
    body = client.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_certificate_from_another_ca_is_refused(radosgw: RadosGW, tmp_path: Path) -> None:
    other = make_test_ca(tmp_path, label="other")
    client = radosgw.client(verify=other.ca_cert_path, retries={"max_attempts": 1})
    with pytest.raises(botocore.exceptions.SSLError):
        client.list_buckets()


def test_object_lock_compliance(radosgw: RadosGW, s3_lock_bucket: str) -> None:
    client = radosgw.client()
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    put = client.put_object(
        Bucket=s3_lock_bucket,
        Key="archive.age",
        Body=b"sealed",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    version = put["VersionId"]
    retention = client.get_object_retention(
        Bucket=s3_lock_bucket, Key="archive.age", VersionId=version
    )["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["RetainUntilDate"] == until
    with pytest.raises(botocore.exceptions.ClientError):
        client.delete_object(Bucket=s3_lock_bucket, Key="archive.age", VersionId=version)
    with pytest.raises(botocore.exceptions.ClientError):
        client.put_object_retention(
            Bucket=s3_lock_bucket,
            Key="archive.age",
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=12)},
        )
    assert client.get_object(Bucket=s3_lock_bucket, Key="archive.age")["Body"].read() == b"sealed"


def test_delete_every_version(radosgw: RadosGW, s3_bucket: str) -> None:
    client = radosgw.client()
    for body in (b"v1", b"v2"):
        client.put_object(Bucket=s3_bucket, Key="k", Body=body)
    client.delete_object(Bucket=s3_bucket, Key="k")  # a delete marker
    listing = client.list_object_versions(Bucket=s3_bucket, Prefix="k")
    assert len(listing.get("Versions", [])) == 2
    assert len(listing.get("DeleteMarkers", [])) == 1
    for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        client.delete_object(Bucket=s3_bucket, Key="k", VersionId=entry["VersionId"])
    listing = client.list_object_versions(Bucket=s3_bucket, Prefix="k")
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []


def test_bad_content_md5_is_rejected(radosgw: RadosGW, s3_bucket: str) -> None:
    import base64

    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()  # S3's own check
    with pytest.raises(botocore.exceptions.ClientError, match="BadDigest|InvalidDigest"):
        radosgw.client().put_object(Bucket=s3_bucket, Key="x", Body=b"data", ContentMD5=wrong)


def test_endpoint_down_then_back(radosgw: RadosGW, s3_bucket: str) -> None:
    client = radosgw.client(retries={"max_attempts": 1}, connect_timeout=2)
    radosgw.stop()
    try:
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client.head_bucket(Bucket=s3_bucket)
    finally:
        radosgw.start()
    client.head_bucket(Bucket=s3_bucket)
