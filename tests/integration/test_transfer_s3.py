"""S3 delivery against a real Ceph RadosGW over HTTPS: multipart, resume, Object Lock,
verification, TLS and outage failures, and interop with plain boto3 and age."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from datetime import date
from pathlib import Path

import pytest

from retirement.connect.info import ConnectionInfo
from retirement.destinations.base import Delivery
from retirement.destinations.s3 import S3Destination
from retirement.errors import IntegrityError, TransferError

pytestmark = pytest.mark.integration
MIB = 1 << 20


def _conn(radosgw, **extra: object) -> ConnectionInfo:
    return ConnectionInfo(
        "archive_s3",
        "aws",
        None,
        radosgw.access_key,
        radosgw.secret_key,
        None,
        None,
        {**radosgw.connection_extra(), "part_size_mb": 5, **extra},
    )


def _dest(radosgw, bucket: str, **extra: object) -> S3Destination:
    return S3Destination.from_connection(
        "archive", _conn(radosgw, **extra), bucket=bucket, prefix="vault"
    )


def _item(tmp_path: Path, size: int, name: str = "x.csv.zst.age", **kw: object) -> Delivery:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Delivery(path, f"demo/crm.invoices/{name}", size, digest, **kw)  # type: ignore[arg-type]


def _versions(client, bucket: str, key: str) -> list[dict]:
    listed = client.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listed.get("Versions", []) if v["Key"] == key]


def test_multipart_delivery_is_verified_and_not_repeated(
    radosgw,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    item = _item(tmp_path, 17 * MIB + 123)
    dest = _dest(radosgw, s3_bucket)
    receipt = dest.deliver(item)
    assert receipt.sha256 == item.sha256
    assert receipt.size == item.size
    assert receipt.version_id
    assert receipt.location == f"s3://{s3_bucket}/vault/{item.name}?versionId={receipt.version_id}"
    assert receipt.method.startswith("HeadObject: size, ETag")
    client = radosgw.client()
    head = client.head_object(Bucket=s3_bucket, Key=f"vault/{item.name}")
    assert head["ETag"].strip('"').endswith("-4")  # 5 MiB parts
    assert head["Metadata"]["sha256"] == item.sha256
    again = dest.deliver(item)
    assert again.version_id == receipt.version_id
    assert len(_versions(client, s3_bucket, f"vault/{item.name}")) == 1


def test_small_file_single_put(radosgw, s3_bucket: str, tmp_path: Path) -> None:
    item = _item(tmp_path, 4096, "small.bin.zst.age")
    receipt = _dest(radosgw, s3_bucket).deliver(item)
    body = radosgw.client().get_object(Bucket=s3_bucket, Key=f"vault/{item.name}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == receipt.sha256 == item.sha256


def test_an_interrupted_multipart_upload_resumes_with_the_parts_that_match(
    radosgw,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    item = _item(tmp_path, 16 * MIB)
    client = radosgw.client()
    key = f"vault/{item.name}"
    dest = _dest(radosgw, s3_bucket)
    ours = dest._common(item)  # as our own interrupted attempt created it
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key=key, **ours)["UploadId"]
    data = item.path.read_bytes()
    for number, body in ((1, data[: 5 * MIB]), (2, data[5 * MIB : 10 * MIB]), (3, b"x" * MIB)):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        client.upload_part(
            Bucket=s3_bucket, Key=key, UploadId=upload, PartNumber=number, Body=body, ContentMD5=md5
        )
    receipt = dest.deliver(item)
    assert receipt.resumed_from == 10 * MIB  # part 3 was not ours: sent again
    got = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert got == data
    assert client.list_multipart_uploads(Bucket=s3_bucket, Prefix=key).get("Uploads", []) == []


def test_an_object_replaced_or_truncated_after_delivery_fails_verification(
    radosgw,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    item = _item(tmp_path, 6 * MIB)
    dest = _dest(radosgw, s3_bucket)
    receipt = dest.deliver(item)
    client = radosgw.client()
    client.put_object(
        Bucket=s3_bucket,
        Key=f"vault/{item.name}",
        Body=item.path.read_bytes()[: 3 * MIB],
        Metadata={"sha256": item.sha256},  # even with our metadata copied
    )
    with pytest.raises(IntegrityError, match=f"vault/{item.name} was replaced"):
        dest.verify(item, receipt.as_dict())
    with pytest.raises(IntegrityError, match=f"vault/{item.name}: holds {3 * MIB} bytes"):
        dest.verify(item)


def test_object_lock_compliance_until_the_retention_end(
    radosgw,
    s3_lock_bucket: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    item = _item(tmp_path, 7 * MIB, retain_until=date(2027, 1, 1))
    receipt = _dest(radosgw, s3_lock_bucket).deliver(item)
    assert receipt.lock == {"mode": "COMPLIANCE", "retain_until": "2027-01-01T00:00:00+00:00"}
    client = radosgw.client()
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(
            Bucket=s3_lock_bucket, Key=f"vault/{item.name}", VersionId=receipt.version_id
        )
    unlocked = _dest(radosgw, s3_bucket).deliver(item)
    assert unlocked.lock == {"mode": "none", "reason": f"bucket {s3_bucket} has no Object Lock"}


def test_endpoint_down_fails_after_bounded_retries(tmp_path: Path, radosgw) -> None:
    from tests.servers.sshd import free_port

    dest = _dest(
        radosgw,
        "nowhere",
        endpoint_url=f"https://127.0.0.1:{free_port()}",
        max_attempts=2,
        connect_timeout=2,
    )
    with pytest.raises(TransferError, match="cannot be reached after the configured retries"):
        dest.deliver(_item(tmp_path, 1024))


def test_a_certificate_from_another_ca_is_refused(
    radosgw,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    from tests.servers.tls import make_test_ca

    other = make_test_ca(tmp_path / "other-ca", label="other")
    dest = _dest(radosgw, s3_bucket, verify=str(other.ca_cert_path))
    with pytest.raises(TransferError, match="TLS verification failed"):
        dest.deliver(_item(tmp_path, 1024))
    with pytest.raises(TransferError, match="cannot be switched off"):
        _dest(radosgw, s3_bucket, verify=False)


def test_plain_boto3_fetches_what_age_decrypts(
    radosgw,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "successor.key").write_text(f"{identity}\n")
    plain = ("id,name\n" + "".join(f"{i},客户{i}\n" for i in range(400_000))).encode()
    cipher = tmp_path / "people.csv.age"
    cipher.write_bytes(pyrage.encrypt(plain, [identity.to_public()]))
    item = Delivery(
        cipher,
        "demo/crm.people/people.csv.age",
        cipher.stat().st_size,
        hashlib.sha256(cipher.read_bytes()).hexdigest(),
    )
    assert item.size > 5 * MIB  # multipart
    _dest(radosgw, s3_bucket).deliver(item)
    fetched = tmp_path / "fetched.age"
    radosgw.client().download_file(s3_bucket, f"vault/{item.name}", str(fetched))
    out = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "successor.key"), str(fetched)],
        check=True,
        capture_output=True,
    )
    assert out.stdout == plain
