"""This machine's PostgreSQL serving TLS with a certificate from a test CA made with openssl,
for the length of a test: ``ALTER SYSTEM`` (ssl, ssl_cert_file, ssl_key_file) and
``pg_reload_conf()``, restored afterwards to what they were. The server's files live in a
folder the postgres user owns (key mode 600), outside pytest's root-only temporary tree."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests.servers.databases import PG_HOST, PG_PORT, PG_USER

if TYPE_CHECKING:
    from collections.abc import Iterator

_SETTINGS = ("ssl", "ssl_cert_file", "ssl_key_file")


@dataclass(frozen=True)
class PgTls:
    ca: Path  # the CA that signed the server's certificate
    wrong_ca: Path  # another CA, which did not


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name} test CA", cwd=folder)  # fmt: skip


def make_server_cert(folder: Path, ca: str) -> None:
    (folder / "san.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
             cwd=folder)  # fmt: skip


def _admin() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def _auto_conf_values(conn: psycopg.Connection) -> dict[str, str]:
    """What postgresql.auto.conf sets now of our settings (restored as they were)."""
    rows = conn.execute(
        "SELECT name, setting FROM pg_file_settings WHERE name = ANY(%s) "
        "AND sourcefile LIKE '%%postgresql.auto.conf' AND applied",
        [list(_SETTINGS)],
    ).fetchall()
    return {name: setting for name, setting in rows}


def _verified_connect(ca: Path) -> None:
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
        sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5,
    ):  # fmt: skip
        pass


@pytest.fixture
def pg_tls(tmp_path: Path) -> Iterator[PgTls]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA (apt-get install openssl)")
    server_dir = Path(tempfile.mkdtemp(prefix="retirement-pg-tls-"))
    make_ca(tmp_path, "right")
    make_ca(tmp_path, "wrong")
    make_server_cert(tmp_path, "right")
    for name in ("server.crt", "server.key"):
        shutil.copyfile(tmp_path / name, server_dir / name)
        shutil.chown(server_dir / name, "postgres", "postgres")
    (server_dir / "server.key").chmod(0o600)
    shutil.chown(server_dir, "postgres", "postgres")
    with _admin() as conn:
        before = _auto_conf_values(conn)
        conn.execute(f"ALTER SYSTEM SET ssl_cert_file = '{server_dir / 'server.crt'}'")
        conn.execute(f"ALTER SYSTEM SET ssl_key_file = '{server_dir / 'server.key'}'")
        conn.execute("ALTER SYSTEM SET ssl = on")
        conn.execute("SELECT pg_reload_conf()")
    try:
        _wait_until_served(tmp_path / "right.pem")
        yield PgTls(tmp_path / "right.pem", tmp_path / "wrong.pem")
    finally:
        with _admin() as conn:
            for name in _SETTINGS:
                if name in before:
                    conn.execute(f"ALTER SYSTEM SET {name} = '{before[name]}'")
                else:
                    conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")
        shutil.rmtree(server_dir, ignore_errors=True)


def _wait_until_served(ca: Path, attempts: int = 100) -> None:
    """The reload is asynchronous: new connections see it once the postmaster read it."""
    import time

    for _ in range(attempts):
        try:
            _verified_connect(ca)
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"PostgreSQL did not start serving the test certificate: {last}")
