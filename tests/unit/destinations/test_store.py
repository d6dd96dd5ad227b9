"""The one upload-verify-rename routine (``destinations.store.deliver_verified``) over the
three stores: a real folder, a real OpenSSH sshd, a real Ceph RadosGW. Each store resumes
what an earlier attempt left where it is ours, starts over where it is not, and renames
nothing into place when the bytes sent are not the manifest's or the store does not hold
all of them."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retirement.connect.info import ConnectionInfo
from retirement.destinations.base import Delivery
from retirement.destinations.local import Folder, LocalDestination
from retirement.destinations.s3 import S3Destination
from retirement.destinations.sftp import SftpDestination
from retirement.destinations.store import Store, deliver_verified
from retirement.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers.radosgw import RadosGW
    from tests.servers.sshd import SshServer

MIB = 1 << 20
NAME = "demo/crm.customers/x.csv.zst.age"


def _file(tmp_path: Path, size: int) -> tuple[Path, str]:
    path = tmp_path / "send.age"
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _send(
    store: Store,
    path: Path,
    sha: str,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, str | None]:
    with path.open("rb") as source:
        sent = deliver_verified(
            store, NAME, source, sha, size=path.stat().st_size, on_bytes=on_bytes
        )
    return sent.resumed_from, sent.version_id


def _replaced_when_all_sent(partial: Path, data: bytes) -> Callable[[int], None]:
    """After the last byte is written, the partial at its name is swapped for the first half
    of the file (what a cleaner or a full disk could leave): the upload's own handle still
    takes every byte, the name holds half of them."""
    sent = [0]

    def cut(n: int) -> None:
        sent[0] += n
        if sent[0] == len(data):
            partial.unlink()
            partial.write_bytes(data[: len(data) // 2])

    return cut


# ---------------------------------------------------------------------- a real folder


def test_folder_resumes_its_own_prefix_and_restarts_a_foreign_one(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, 3 * MIB + 17)
    root = tmp_path / "dest"
    final = root / NAME
    partial = final.with_name(f".{final.name}.partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(path.read_bytes()[: 2 * MIB])
    assert _send(Folder(root), path, sha) == (2 * MIB, None)
    assert final.read_bytes() == path.read_bytes()
    assert not partial.exists()

    final.unlink()
    partial.write_bytes(b"not ours" * 1000)
    assert _send(Folder(root), path, sha) == (0, None)
    assert final.read_bytes() == path.read_bytes()


def test_folder_a_wrong_hash_renames_nothing(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, MIB + 5)
    root = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="nothing was put in place"):
        _send(Folder(root), path, "0" * 64)
    assert [p for p in root.rglob("*") if p.is_file()] == []  # no file, no partial


def test_folder_a_partial_cut_under_the_upload_renames_nothing(tmp_path: Path) -> None:
    size = 3 * MIB
    path, sha = _file(tmp_path, size)
    root = tmp_path / "dest"
    final = root / NAME
    partial = final.with_name(f".{final.name}.partial")
    with pytest.raises(IntegrityError, match=f"the destination holds {size // 2}"):
        _send(Folder(root), path, sha, on_bytes=_replaced_when_all_sent(partial, path.read_bytes()))
    assert not final.exists()


def test_folder_destination_receipts_name_the_resumed_bytes(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, 2 * MIB)
    dest = LocalDestination("archive", tmp_path / "dest")
    item = Delivery(path, NAME, 2 * MIB, sha)
    partial = tmp_path / "dest" / f"demo/crm.customers/.{Path(NAME).name}.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(path.read_bytes()[:MIB])
    receipt = dest.deliver(item)
    assert (receipt.resumed_from, receipt.sha256) == (MIB, sha)
    assert dest.deliver(item).resumed_from == 0  # already there: verified, not sent


# ---------------------------------------------------------------------- a real sshd


def _sftp(server: SshServer) -> SftpDestination:
    conn = ConnectionInfo(
        "successor_sftp",
        "sftp",
        server.host,
        server.user,
        None,
        server.port,
        None,
        server.connection_extra(),
    )
    return SftpDestination.from_connection("successor", conn, path="drop")


@pytest.mark.integration
def test_sftp_resumes_its_own_prefix_and_renames_nothing_on_a_wrong_hash(
    sshd_server_fresh: SshServer, tmp_path: Path
) -> None:
    path, sha = _file(tmp_path, 4 * MIB)
    drop = sshd_server_fresh.upload_dir / "drop"
    final = drop / NAME
    partial = final.with_name(f".{final.name}.partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(path.read_bytes()[: 3 * MIB])
    item = Delivery(path, NAME, 4 * MIB, sha)
    with _sftp(sshd_server_fresh) as dest, dest.store(item) as store:
        with pytest.raises(IntegrityError, match="nothing was put in place"):
            _send(store, path, "f" * 64)
        assert not final.exists()
        assert not partial.exists()  # discarded: it was not what the manifest promised
        partial.write_bytes(path.read_bytes()[: 3 * MIB])
        assert _send(store, path, sha) == (3 * MIB, None)
    assert final.read_bytes() == path.read_bytes()
    assert not partial.exists()


@pytest.mark.integration
def test_sftp_a_partial_cut_under_the_upload_renames_nothing(
    sshd_server_fresh: SshServer, tmp_path: Path
) -> None:
    size = 3 * MIB
    path, sha = _file(tmp_path, size)
    final = sshd_server_fresh.upload_dir / "drop" / NAME
    partial = final.with_name(f".{final.name}.partial")
    item = Delivery(path, NAME, size, sha)
    cut = _replaced_when_all_sent(partial, path.read_bytes())
    with (
        _sftp(sshd_server_fresh) as dest,
        dest.store(item) as store,
        pytest.raises(IntegrityError, match=f"the destination holds {size // 2}"),
    ):
        _send(store, path, sha, on_bytes=cut)
    assert not final.exists()


# ---------------------------------------------------------------------- a real RadosGW


def _s3(radosgw: RadosGW, bucket: str) -> S3Destination:
    conn = ConnectionInfo(
        "archive_s3",
        "aws",
        None,
        radosgw.access_key,
        radosgw.secret_key,
        None,
        None,
        {**radosgw.connection_extra(), "part_size_mb": 5},
    )
    return S3Destination.from_connection("archive", conn, bucket=bucket, prefix="vault")


@pytest.mark.integration
def test_s3_keeps_its_own_parts_and_sends_a_short_foreign_one_again(
    radosgw: RadosGW,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    path, sha = _file(tmp_path, 12 * MIB)
    dest = _s3(radosgw, s3_bucket)
    item = Delivery(path, NAME, 12 * MIB, sha)
    client, key = radosgw.client(), f"vault/{NAME}"
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key=key, **dest._common(item))
    data = path.read_bytes()
    for number, body in ((1, data[: 5 * MIB]), (2, data[5 * MIB : 7 * MIB])):  # 2 is cut short
        client.upload_part(
            Bucket=s3_bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
            ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
        )
    with dest.store(item) as store:
        resumed, version = _send(store, path, sha)
    assert resumed == 5 * MIB
    assert client.get_object(Bucket=s3_bucket, Key=key, VersionId=version)["Body"].read() == data


@pytest.mark.integration
@pytest.mark.parametrize("size", [MIB, 11 * MIB], ids=["one-put", "multipart"])
def test_s3_a_wrong_hash_publishes_nothing(
    radosgw: RadosGW,
    s3_bucket: str,
    tmp_path: Path,
    size: int,
) -> None:
    path, sha = _file(tmp_path, size)
    dest = _s3(radosgw, s3_bucket)
    item = Delivery(path, NAME, size, "e" * 64)
    with dest.store(item) as store, pytest.raises(IntegrityError, match="nothing was put"):
        _send(store, path, "e" * 64)
    client, key = radosgw.client(), f"vault/{NAME}"
    assert client.list_object_versions(Bucket=s3_bucket, Prefix=key).get("Versions", []) == []
    assert client.list_multipart_uploads(Bucket=s3_bucket, Prefix=key).get("Uploads", []) == []
    assert sha != "e" * 64
