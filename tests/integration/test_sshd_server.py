"""The sshd test server is real: key auth, pinned host keys, crash and restart."""

from __future__ import annotations

import io
from pathlib import Path

import paramiko
import pytest

from tests.servers.sshd import SshServer

pytestmark = pytest.mark.integration


def _client(server: SshServer, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        server.host,
        server.port,
        username=server.user,
        key_filename=str(server.client_key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def test_sftp_upload_with_pinned_key(sshd_server: SshServer) -> None:
    client = _client(sshd_server, sshd_server.known_hosts_path)
    with client, client.open_sftp() as sftp:
        with sftp.open("hello.bin", "wb") as f:
            f.write(b"\x00\x01retire" * 1000)
        assert sftp.stat("hello.bin").st_size == 8000
    assert (sshd_server.upload_dir / "hello.bin").read_bytes() == b"\x00\x01retire" * 1000


def test_wrong_host_key_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:
    other = SshServer(tmp_path / "other")  # only for a different host key; never started
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd_server.host}]:{sshd_server.port} {other.host_public_key}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        _client(sshd_server, wrong)


def test_unknown_host_is_refused(sshd_server: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _client(sshd_server, empty)


def test_crash_and_restart(sshd_server_fresh: SshServer) -> None:
    server = sshd_server_fresh
    server.stop()
    assert not server.is_running()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        _client(server, server.known_hosts_path)
    server.start()
    client = _client(server, server.known_hosts_path)
    with client, client.open_sftp() as sftp:
        sftp.putfo(io.BytesIO(b"after restart"), "again.txt")
    assert (server.upload_dir / "again.txt").read_bytes() == b"after restart"


def test_exec_server_runs_sha256sum(sshd_exec_server: SshServer) -> None:
    target = sshd_exec_server.upload_dir / "data.bin"
    target.write_bytes(b"abc")
    client = _client(sshd_exec_server, sshd_exec_server.known_hosts_path)
    with client:
        _, stdout, _ = client.exec_command(f"sha256sum {target}")
        digest = stdout.read().decode().split()[0]
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
