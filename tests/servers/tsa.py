"""A local RFC 3161 time-stamping authority for tests: ``openssl ts -reply`` behind a tiny
HTTPS server on a loopback port, signing with a TSA certificate (extendedKeyUsage critical
timeStamping) issued by a throwaway CA."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.connect.info import ConnectionInfo

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = {digests}
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tsa_certs(directory: Path, digests: str = "sha256, sha384, sha512") -> Path:
    """A CA (tsa-ca.pem, what an auditor is given) and the TSA's key and certificate
    (extendedKeyUsage timeStamping, critical, as RFC 3161 requires); the CA's path."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA CA"))
        .issuer_name(_name("test TSA CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "tsa-ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "tsa.crt").write_bytes(cert.public_bytes(pem))
    (directory / "tsa.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(_CONFIG.format(dir=directory, digests=digests))
    return directory / "tsa-ca.pem"


@dataclass
class LocalTsa:
    """A running TSA: its CA (for audits), the TLS CA (for the connection), the replies it
    gave, and a connection to it."""

    tsa_ca: Path
    connection: ConnectionInfo
    replies: list[bytes]


def _handler(config: Path, replies: list[bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "q.tsq").write_bytes(query)
                run = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(config), "-queryfile"]
                    + [f"{tmp}/q.tsq", "-out", f"{tmp}/r.tsr"],
                    capture_output=True,
                    check=False,
                )
                if run.returncode != 0:
                    self.send_error(500, run.stderr.decode(errors="replace")[:200])
                    return
                reply = (Path(tmp) / "r.tsr").read_bytes()
            replies.append(reply)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def run_tsa(
    directory: Path, conn_id: str = "tsa", digests: str = "sha256, sha384, sha512"
) -> Iterator[LocalTsa]:
    """Serve a TSA over HTTPS on 127.0.0.1 until the generator is closed (``digests``: the
    hash algorithms it accepts; it rejects a request with another)."""
    from retirement.connect.info import ConnectionInfo

    tsa_ca = make_tsa_certs(directory / "tsa", digests)
    tls = make_test_ca(directory / "tls", label="tsa")
    replies: list[bytes] = []
    port = free_port()
    server = http.server.HTTPServer(
        ("127.0.0.1", port), _handler(directory / "tsa" / "tsa.cnf", replies)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_cert_path, tls.server_key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    extra = {"ca_bundle": str(tls.ca_cert_path), "path": "/tsa", "timeout": 20}
    conn = ConnectionInfo(conn_id, "http", "localhost", None, None, port, "https", extra)
    try:
        yield LocalTsa(tsa_ca, conn, replies)
    finally:
        server.shutdown()
        server.server_close()
