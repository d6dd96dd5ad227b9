"""docker-compose.yaml's Airflow services run natively, each process with only what its
container would have, so a setting missing from the compose file fails here as it would in
Docker (no Docker engine runs in the tests).

What a process gets, and nothing else (not this test process's environment):

* the image's environment (the apache/airflow base image's ``ENV``) and its files: the
  Dockerfile's ``COPY`` lines of the last stage, linked into the process's own root folder;
  the project itself is installed in .venv as in the image;
* its service's ``environment`` and ``volumes`` exactly as ``docker compose config`` prints
  them for the test's .env (written by `make compose-env`'s own code): bind mounts linked to the
  folders the test names for them, named volumes shared by every process that mounts them;
  container paths are rewritten to the process's root folder, so ``AIRFLOW_HOME`` and the
  config each process reads are its own unless a shared volume makes them common;
* the compose network mapped to loopback: ``postgres`` to a test database per database name,
  every other service name and port to a loopback address (and a server's account to the one
  its test server has).

What stands in for a container (named in :data:`CONTAINER`): its hostname (``HOSTNAME``, and
Airflow's hostname callable reading it), the ports its servers open (each container has its own
network namespace; here each process gets free loopback ports), and the image's entrypoint for
airflow-init (tests/e2e/image_entrypoint.sh: migrate and create the admin user, as the image
does for ``_AIRFLOW_DB_MIGRATE`` and ``_AIRFLOW_WWW_USER_CREATE``). Read-only mounts are not
enforced and every process runs as this test's user. Airflow writes the shared config with
airflow-init's paths spelled out (``/opt/airflow/dags``, which here is airflow-init's root
folder); they lead to the same files, as they do in Docker.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.servers.sshd import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
IMAGE_ENTRYPOINT = Path(__file__).with_name("image_entrypoint.sh")
# The apache/airflow base image's own ENV (docs: docker-stack, "Environment variables").
IMAGE_ENV = {
    "AIRFLOW_HOME": "/opt/airflow",
    "AIRFLOW_UID": "50000",
    "AIRFLOW_USER_HOME_DIR": "/home/airflow",
    "HOME": "/home/airflow",
    "LANG": "C.UTF-8",
}
CONTAINER_PATHS = re.compile(r"(?<![\w./-])(/opt/airflow|/opt/retirement|/home/airflow)(?![\w.-])")
URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<auth>[^@/\s\"]*)@)?(?P<host>[A-Za-z0-9_.-]+)"
    r"(?::(?P<port>\d+))?(?P<path>/[^\s\"?#]*)?"
)
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379}
SHIM = '''"""The container's hostname, as Docker gives it (stands in for socket.getfqdn())."""
import os


def hostname() -> str:
    return os.environ["HOSTNAME"]
'''


@dataclass(frozen=True)
class Network:
    """The compose network on this machine."""

    services: frozenset[str]
    databases: dict[str, str]  # database name on service `postgres` -> a test database URL
    addresses: dict[str, tuple[str, int]]  # "service:port" -> a loopback address
    urls: dict[str, str] = field(default_factory=dict)  # whole URLs replaced as they are
    logins: dict[str, str] = field(default_factory=dict)  # service -> its account here

    def url(self, match: re.Match[str]) -> str:
        scheme, auth, host, path = match["scheme"], match["auth"], match["host"], match["path"]
        if host not in self.services:
            return match[0]
        if host == "postgres":
            db = sa.engine.make_url(self._database((path or "/").strip("/")))
            login = db.username + (f":{db.password}" if db.password else "")
            return f"{scheme}://{login}@{db.host}:{db.port}/{db.database}"
        address, port = self.address(host, int(match["port"] or DEFAULT_PORTS[scheme]))
        login = f"{auth}@" if auth is not None else ""
        return f"{scheme}://{login}{address}:{port}{path or ''}"

    def address(self, host: str, port: int) -> tuple[str, int]:
        key = f"{host}:{port}"
        if key not in self.addresses:
            raise AssertionError(f"the native network has no address for {key}")
        return self.addresses[key]

    def _database(self, name: str) -> str:
        if name not in self.databases:
            raise AssertionError(f"the native network has no database {name!r} on postgres")
        return self.databases[name]

    def connection(self, conn: dict[str, Any]) -> dict[str, Any]:
        """An AIRFLOW_CONN_* JSON connection with its host on this machine."""
        host = conn.get("host")
        if host == "postgres":
            db = sa.engine.make_url(self._database(conn["schema"]))
            conn.update(
                host=db.host,
                port=db.port,
                login=db.username,
                password=db.password or "",
                schema=db.database,
            )
        elif host in self.services:
            conn["host"], conn["port"] = self.address(host, int(conn["port"]))
            conn["login"] = self.logins.get(host, conn.get("login"))
        return conn


@dataclass
class Container:
    """One service replica as a native process: its root folder, environment and argv."""

    name: str
    root: Path
    env: dict[str, str]
    argv: list[str]
    healthcheck: list[str] | None = None


@dataclass
class NativeCompose:
    """The services of a normalized compose project (``docker compose config`` as JSON)."""

    config: dict[str, Any]
    base: Path
    binds: dict[str, Path]  # bind source relative to the project folder -> a folder or file here
    network: Network
    overrides: dict[str, str] = field(default_factory=dict)  # for every process (the executor)

    def __post_init__(self) -> None:
        (self.base / "shim").mkdir(parents=True, exist_ok=True)
        (self.base / "shim" / "container_hostname.py").write_text(SHIM)

    def service(self, name: str) -> dict[str, Any]:
        svc: dict[str, Any] = self.config["services"][name]
        return svc

    def container(
        self,
        service: str,
        name: str,
        ports: dict[str, int] | None = None,
        *,
        command: list[str] | None = None,
    ) -> Container:
        """Replica ``name`` of ``service``; ``ports``: its servers' ports ("host:port" as the
        service's healthcheck names them -> the setting that moves that server here)."""
        svc = self.service(service)
        root = self.base / "containers" / name
        for folder in ("opt/airflow", "home/airflow"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for target, source in image_files().items():
            _link(root, target, source)
        for mount in svc.get("volumes", []):
            _link(root, mount["target"], self._host(service, mount))
        env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
        for key, value in {**IMAGE_ENV, **svc.get("environment", {})}.items():
            env[key] = self.translate(value, root)
        env.update(self.overrides)
        env.update(self._container_env(name, ports or {}))
        argv = self._argv(svc, root, command)
        return Container(name, root, env, argv, self._healthcheck(svc, ports or {}))

    def _container_env(self, name: str, ports: dict[str, int]) -> dict[str, str]:
        """What Docker gives a container and a shared machine cannot: hostname and ports."""
        env = {
            "HOSTNAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "container_hostname.hostname",
            "PYTHONPATH": str(self.base / "shim"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        for setting in ports:
            env[setting] = str(ports[setting])
        return env

    def _argv(self, svc: dict[str, Any], root: Path, command: list[str] | None) -> list[str]:
        if svc.get("entrypoint"):
            entry = [self.translate(a, root) for a in svc["entrypoint"]]
            return entry + [self.translate(a, root) for a in svc.get("command") or []]
        return [AIRFLOW, *(command or svc["command"])]  # the image runs airflow's subcommands

    def _healthcheck(self, svc: dict[str, Any], ports: dict[str, int]) -> list[str] | None:
        test = (svc.get("healthcheck") or {}).get("test")
        if not test:
            return None
        words = [w.replace("$$", "$") for w in test[1:]]
        for setting, port in ports.items():
            default = HEALTH_PORTS.get(setting)
            if default:
                words = [w.replace(f"localhost:{default}", f"127.0.0.1:{port}") for w in words]
        return ["bash", "-c", words[0]] if test[0] == "CMD-SHELL" else words

    def _host(self, service: str, mount: dict[str, Any]) -> Path:
        if mount["type"] == "volume":
            path = self.base / "volumes" / mount["source"]
            path.mkdir(parents=True, exist_ok=True)
            return path
        relative = Path(mount["source"]).relative_to(ROOT).as_posix()
        if relative not in self.binds:
            raise AssertionError(
                f"{service} mounts ./{relative}: the native stack has no such bind"
            )
        return self.binds[relative]

    def translate(self, value: str, root: Path) -> str:
        """A value of the compose file as this machine needs it (network names, paths)."""
        if value.lstrip().startswith("{"):
            conn = self.network.connection(json.loads(value))
            return json.dumps(_walk(conn, lambda s: self.translate(s, root)))
        for old, new in self.network.urls.items():
            value = value.replace(old, new)
        value = URL.sub(self.network.url, value)
        return CONTAINER_PATHS.sub(lambda m: f"{root}{m[1]}", value)


# Where a service's healthcheck expects its server (the container's own port) -> its setting.
HEALTH_PORTS = {
    "AIRFLOW__API__PORT": 8080,
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": 8974,
}


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {k: _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return value


def _link(root: Path, target: str, source: Path) -> None:
    path = root / target.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink():
        path.symlink_to(source)


def image_files() -> dict[str, Path]:
    """What the Dockerfile's last stage copies into the image: target path -> project path."""
    stage = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").split("\nFROM ")[-1]
    files: dict[str, Path] = {}
    for line in stage.splitlines():
        words = shlex.split(line)
        if not words or words[0] != "COPY":
            continue
        *sources, dest = [w for w in words[1:] if not w.startswith("--")]
        for source in sources:
            target = f"{dest.rstrip('/')}/{Path(source).name}" if dest.endswith("/") else dest
            files[target] = ROOT / source
    return files


def run_healthcheck(container: Container) -> subprocess.CompletedProcess[str]:
    """The service's own healthcheck command, run as Docker would in that container."""
    assert container.healthcheck, f"{container.name} has no healthcheck"
    return subprocess.run(
        container.healthcheck,
        env=container.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
