"""A real OpenSSH sshd on a free loopback port, with its own host key and an authorized user key.

Nothing system-wide is touched except ``/run/sshd`` (which sshd requires). The server can be
killed (a crash) and started again on the same port with the same keys.
"""

from __future__ import annotations

import getpass
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

if TYPE_CHECKING:
    from collections.abc import Iterator

SSHD = Path("/usr/sbin/sshd")


def require_sshd() -> Path:
    if not SSHD.exists():
        raise RuntimeError(
            f"{SSHD} is missing: install Debian's openssh-server "
            "(`apt-get install openssh-server`; `make test` does it as root)"
        )
    return SSHD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_key(path: Path) -> str:
    """Write a new ed25519 private key (OpenSSH format); return its public line."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    Path(f"{path}.pub").write_text(public + "\n")
    return public


@dataclass
class SshServer:
    """One sshd process under ``root``; ``upload_dir`` is where SFTP sessions start."""

    root: Path
    force_sftp: bool = True
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    _proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        require_sshd()
        self.root.mkdir(parents=True, exist_ok=True)
        self.upload_dir.mkdir(exist_ok=True)
        (self.root / "authorized").mkdir(exist_ok=True)
        self.host_public_key = _write_key(self.root / "host_ed25519")
        client_public = _write_key(self.client_key_path)
        (self.root / "authorized" / self.user).write_text(client_public + "\n")
        self.known_hosts_path.write_text(f"[{self.host}]:{self.port} {self.host_public_key}\n")
        self.config_path.write_text(self._config())
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects {self.config_path}: {check.stderr.strip()}")

    @property
    def upload_dir(self) -> Path:
        return self.root / "upload"

    @property
    def client_key_path(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.root / "known_hosts"

    @property
    def config_path(self) -> Path:
        return self.root / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    @property
    def host_key_base64(self) -> str:
        return self.host_public_key.split()[1]

    def _config(self) -> str:
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.root / 'host_ed25519'}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized'}/%u",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            f"AllowUsers {self.user}",
            "PermitRootLogin yes" if self.user == "root" else "PermitRootLogin no",
            "MaxStartups 50",
            "Subsystem sftp internal-sftp",
        ]
        if self.force_sftp:
            lines += [
                f"Match User {self.user}",
                f"    ForceCommand internal-sftp -d {self.upload_dir}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        if self.is_running():
            return
        self._proc = subprocess.Popen(  # our own fixed argv
            [str(SSHD), "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError:
                time.sleep(0.05)
        tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else "(no log)"
        self.stop()
        raise RuntimeError(f"sshd did not come up on {self.host}:{self.port}:\n{tail}")

    def stop(self) -> None:
        """Kill the server, as a crash would (SIGKILL), and wait for it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    def crash(self) -> None:
        """Kill the listener and every session it forked (a server crash mid-transfer)."""
        import psutil

        if self._proc is not None and self._proc.poll() is None:
            for child in psutil.Process(self._proc.pid).children(recursive=True):
                child.kill()
        self.stop()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def connection_extra(self) -> dict[str, object]:
        """The extra of an Airflow sftp connection to this server (host key pinned)."""
        return {
            "key_file": str(self.client_key_path),
            "host_key": self.host_key_base64,
            "no_host_key_check": False,
            "compress": False,
        }


def _started(root: Path, **kwargs: object) -> SshServer:
    server = SshServer(root, **kwargs)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the session (SFTP only)."""
    server = _started(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def sshd_server_fresh(tmp_path: Path) -> Iterator[SshServer]:
    """A separate sshd that a test may kill and restart."""
    server = _started(tmp_path / "sshd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sshd_exec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """An sshd that also allows commands (e.g. ``sha256sum``); SFTP starts in the home dir."""
    server = _started(tmp_path_factory.mktemp("sshd-exec"), force_sftp=False)
    yield server
    server.stop()


__all__ = ["SshServer", "free_port", "require_sshd"]
