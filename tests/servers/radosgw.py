"""A real S3-compatible server over HTTPS: Ceph RadosGW on a throwaway single-node cluster.

One monitor, one memstore OSD and one radosgw, all in foreground processes this module owns,
with every path under one directory and ``-c CONF`` on each command (nothing system-wide).
The HTTPS endpoint uses a certificate from a test CA; clients verify against that CA.
Recipe and pitfalls: ../shared/TEST-SERVERS.md.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers.sshd import free_port
from tests.servers.tls import TestCA, make_test_ca

if TYPE_CHECKING:
    from collections.abc import Iterator

BINARIES = {
    "monmaptool": "ceph-mon",
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "radosgw": "radosgw",
    "radosgw-admin": "radosgw",
    "ceph": "ceph-common",
}
_LIVE: list[RadosGW] = []


def require_ceph() -> None:
    missing = sorted({pkg for exe, pkg in BINARIES.items() if shutil.which(exe) is None})
    if missing:
        raise RuntimeError(
            "Ceph RadosGW test server needs Debian packages: "
            + " ".join(missing)
            + " (apt-get install --no-install-recommends ...; `make test` does it "
            "as root)"
        )


@dataclass
class RadosGW:
    root: Path
    access_key: str = "retirement-test"
    secret_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    region: str = "us-east-1"
    mon_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tls: TestCA = make_test_ca(self.root / "tls")
        self.conf = self.root / "ceph.conf"

    @property
    def endpoint_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ca_bundle(self) -> Path:
        return self.tls.ca_cert_path

    def client(self, *, verify: str | Path | None = None, **config: Any) -> Any:
        """A boto3 S3 client verifying TLS against the test CA (or ``verify``)."""
        import boto3
        from botocore.config import Config

        settings = {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "retries": {"max_attempts": 3, "mode": "standard"},
            "s3": {"addressing_style": "path"},
            "connect_timeout": 5,
            "read_timeout": 30,
        }
        settings.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            verify=str(verify or self.ca_bundle),
            config=Config(**settings),
        )

    def connection_extra(self) -> dict[str, object]:
        """The extra of an Airflow aws connection to this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "verify": str(self.ca_bundle),
            "config_kwargs": {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
                "s3": {"addressing_style": "path"},
            },
        }

    # ------------------------------------------------------------------ lifecycle

    def _config(self, fsid: str) -> str:
        d = self.root
        return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{self.mon_port}]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 3221225472
run dir = {d}/run
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid
admin socket = {d}/run/$name.asok
mon data = {d}/mon/$cluster-$id
osd data = {d}/osd/$cluster-$id
keyring = {d}/keyring
log to stderr = false
err to stderr = false
mon cluster log file = {d}/log/cluster.log

[client.rgw.test]
ms mon client mode = crc
ms client mode = crc
rgw data = {d}/rgw
rgw frontends = {self._frontends()}
rgw thread pool size = 64
rgw enable usage log = false
rgw dns name = localhost
"""

    def _frontends(self) -> str:
        return (
            f"beast endpoint=127.0.0.1:{self.http_port} ssl_endpoint=127.0.0.1:{self.https_port}"
            f" ssl_certificate={self.tls.server_cert_path}"
            f" ssl_private_key={self.tls.server_key_path}"
        )

    def _run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [args[0], "-c", str(self.conf), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def _spawn(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(  # fixed argv
            [args[0], "-f", "-c", str(self.conf), *args[1:]],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "log" / f"{name}.stderr").open("wb"),
            start_new_session=True,
        )

    def _log_tail(self, name: str) -> str:
        parts = []
        for path in sorted((self.root / "log").glob(f"*{name}*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts) or "(no log)"

    def start_cluster(self) -> None:
        require_ceph()
        for sub in ("run", "log", "mon/ceph-a", "osd/ceph-0", "rgw"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(self._config(fsid))
        (self.root / "keyring").write_text("")
        monmap = self.root / "monmap"
        subprocess.run(
            [
                "monmaptool",
                "--create",
                "--addv",
                "a",
                f"[v2:127.0.0.1:{self.mon_port}]",
                "--fsid",
                fsid,
                str(monmap),
            ],
            capture_output=True,
            check=True,
        )
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._spawn("mon", "ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "--connect-timeout", "20", "osd", "new", osd_uuid).strip()
        self._run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("osd", "ceph-osd", "-i", osd_id)
        self.start()
        self._run(
            "radosgw-admin",
            "user",
            "create",
            "--uid",
            "retirement",
            "--display-name",
            "retirement tests",
            "--access-key",
            self.access_key,
            "--secret",
            self.secret_key,
        )

    def start(self, timeout: float = 60) -> None:
        """Start radosgw (again) and wait until HTTPS answers."""
        if "rgw" in self.procs and self.procs["rgw"].poll() is None:
            return
        self._spawn("rgw", "radosgw", "-n", "client.rgw.test")
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs["rgw"].poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.endpoint_url, context=context, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the gateway is serving
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(
            f"radosgw did not answer on {self.endpoint_url}:\n{self._log_tail('rgw')}"
        )

    def stop(self) -> None:
        """Kill radosgw only: the S3 endpoint goes down, the cluster stays."""
        self._kill("rgw")

    def _kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(15)

    def close(self) -> None:
        for name in ("rgw", "osd", "mon"):
            self._kill(name)
        if self in _LIVE:
            _LIVE.remove(self)


def start_radosgw(root: Path) -> RadosGW:
    gw = RadosGW(root)
    _LIVE.append(gw)
    try:
        gw.start_cluster()
    except BaseException:
        gw.close()
        raise
    return gw


@atexit.register
def _kill_leftovers() -> None:
    for gw in list(_LIVE):
        gw.close()


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGW]:
    """A RadosGW over HTTPS for the whole session (~15 s to start)."""
    gw = start_radosgw(tmp_path_factory.mktemp("radosgw"))
    yield gw
    gw.close()


@pytest.fixture
def s3_bucket(radosgw: RadosGW) -> str:
    """A fresh, versioned bucket on the session's RadosGW."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    client = radosgw.client()
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def s3_lock_bucket(radosgw: RadosGW) -> str:
    """A fresh bucket with Object Lock enabled (and so versioning)."""
    name = f"lock-{uuid.uuid4().hex[:16]}"
    radosgw.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


__all__ = ["RadosGW", "require_ceph", "start_radosgw"]
