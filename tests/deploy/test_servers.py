"""The stack's own servers, their start scripts run natively: what the containers run, minus
Docker. RadosGW (deploy/s3/radosgw.sh) creates its cluster and the archive bucket, serves HTTPS
with Object Lock and keeps the data over a restart; sshd accepts deploy/sftp/sshd_config;
PostgreSQL's init script creates the ledger's role and database."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.deploy.compose import ROOT
from tests.servers.databases import PG_HOST, PG_PORT, PG_USER
from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca


def _start_s3(data: Path, tls, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ROOT / "deploy" / "s3" / "radosgw.sh")],
        env={**env, "S3_DATA": str(data)},
        stdout=(data.parent / "s3.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _s3_client(port: int, tls, env: dict[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"https://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=env["S3_SECRET_KEY"],
        verify=str(tls.ca_cert_path),
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 10, "mode": "standard"},
        ),
    )


def _wait(data: Path, proc: subprocess.Popen, log: Path, port: int, timeout: float = 180) -> None:
    """Until the script says it is ready and the HTTPS port answers, as the compose
    healthcheck reads it (a `ready` file left by a killed run is removed at start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        if (data / "ready").exists() and _answers(port):
            return
        time.sleep(1)
    raise AssertionError(f"the S3 server never answered:\n{log.read_text()[-3000:]}")


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_the_s3_server_keeps_locked_archives_over_a_restart(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    tls = make_test_ca(tmp_path / "tls")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "S3_BIND": "127.0.0.1",
        "S3_HTTPS_PORT": str(port),
        "S3_MON_PORT": str(free_port()),
        "S3_LOCAL_PORT": str(free_port()),
        "S3_TLS_CERT": str(tls.server_cert_path),
        "S3_TLS_KEY": str(tls.server_key_path),
        "S3_OSD_BYTES": str(2 * 1024**3),
        "S3_ACCESS_KEY": "stack-test",
        "S3_SECRET_KEY": uuid.uuid4().hex,
    }
    data, log = tmp_path / "data", tmp_path / "s3.log"
    client = _s3_client(port, tls, env)
    proc = _start_s3(data, tls, env)
    try:
        _wait(data, proc, log, port)
        lock = client.get_object_lock_configuration(Bucket="retirement-archive")
        assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        put = client.put_object(
            Bucket="retirement-archive",
            Key="archive.age",
            Body=b"sealed",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
        )
        with pytest.raises(ClientError, match="AccessDenied"):
            client.delete_object(
                Bucket="retirement-archive", Key="archive.age", VersionId=put["VersionId"]
            )
        _stop(proc)  # docker compose restart s3
        assert not (data / "ready").exists(), "a stopped server must not look ready"
        proc = _start_s3(data, tls, env)
        _wait(data, proc, log, port)
        assert (
            client.get_object(Bucket="retirement-archive", Key="archive.age")["Body"].read()
            == b"sealed"
        )
        retention = client.get_object_retention(Bucket="retirement-archive", Key="archive.age")[
            "Retention"
        ]
        assert retention["Mode"] == "COMPLIANCE"
    finally:
        _stop(proc)


def test_the_s3_server_refuses_to_start_without_its_certificate(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "deploy" / "s3" / "radosgw.sh")],
        env={
            "PATH": os.environ["PATH"],
            "S3_DATA": str(tmp_path),
            "S3_ACCESS_KEY": "a",
            "S3_SECRET_KEY": "b",
            "S3_TLS_CERT": str(tmp_path / "missing.crt"),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode != 0
    assert "missing TLS file" in done.stderr
    assert not (tmp_path / "ceph.conf").exists()


def test_sshd_accepts_the_sftp_config(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "ssh_host_ed25519_key")],
        check=True,
    )
    config = (ROOT / "deploy" / "sftp" / "sshd_config").read_text()
    config = config.replace("/etc/ssh/keys", str(keys)).replace("Port 22", f"Port {free_port()}")
    (tmp_path / "sshd_config").write_text(config)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    Path("/run/sshd").mkdir(exist_ok=True)
    checked = subprocess.run(
        [sshd, "-t", "-f", str(tmp_path / "sshd_config")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    effective = subprocess.run(
        [
            sshd,
            "-T",
            "-f",
            str(tmp_path / "sshd_config"),
            "-C",
            "user=successor,host=h,addr=1.2.3.4",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "passwordauthentication no" in effective
    assert "chrootdirectory /srv/sftp" in effective
    assert "forcecommand internal-sftp -d /upload" in effective


def test_the_postgres_init_script_creates_the_ledger_role_and_database() -> None:
    name = f"rt_init_{uuid.uuid4().hex[:10]}"
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": PG_HOST,
        "PGPORT": str(PG_PORT),
        "POSTGRES_USER": PG_USER,
        "POSTGRES_DB": "postgres",
        "RETIREMENT_DB_NAME": name,
        "RETIREMENT_DB_PASSWORD": "pw-" + uuid.uuid4().hex,
    }
    try:
        subprocess.run(
            [str(ROOT / "deploy" / "postgres" / "10-retirement.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name) as conn:
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        assert owner == (name,)
    finally:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')
