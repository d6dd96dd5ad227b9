"""Airflow's own processes started one by one, as a deployment runs them: API server, scheduler,
DAG processor, triggerer and, for the CeleryExecutor, Celery workers; PostgreSQL as the
metadata database. Every process logs to ``<home>/logs/<name>.log``; the REST API is driven
with a bearer token from ``/auth/token`` (simple auth manager)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers.sshd import free_port

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@dataclass
class AirflowStack:
    home: Path
    env: dict[str, str]
    workers: int = 0  # Celery workers; 0 for the LocalExecutor
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    def start(self) -> None:
        migrated = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=600
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        self._spawn("api-server", "api-server")
        self._spawn("scheduler", "scheduler")
        self._spawn("dag-processor", "dag-processor")
        self._spawn("triggerer", "triggerer")
        for n in range(1, self.workers + 1):
            self._spawn(
                f"worker{n}",
                "celery",
                "worker",
                "--concurrency",
                "2",
                "--celery-hostname",
                f"w{n}@%h",
                extra={
                    "RETIREMENT_WORKER_NAME": f"w{n}",
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                },
            )
        self.token = self._wait_for_token()

    def _spawn(self, name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        log = (self.home / "logs" / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.home / "logs" / f"{name}.log").read_text(errors="replace")[-chars:]

    def _wait_for_token(self) -> str:
        def exited() -> str | None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    return f"airflow {name} exited:\n{self.log_tail(name)}"
            return None

        return wait_for_token(self.url, exited, lambda: self.log_tail("api-server"))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def wait_dag(self, dag: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/api/v2/dags/{dag}").status_code != 200:
            assert time.monotonic() < deadline, f"{dag} was never parsed:\n" + self.log_tail(
                "dag-processor"
            )
            time.sleep(2)
        assert self.api("PATCH", f"/api/v2/dags/{dag}", json={"is_paused": False}).is_success

    def trigger(self, dag: str) -> str:
        run = self.api("POST", f"/api/v2/dags/{dag}/dagRuns", json={"logical_date": None})
        assert run.status_code == 200, run.text
        return run.json()["dag_run_id"]

    def wait_run(self, dag: str, run_id: str, timeout: float = 600) -> str:
        return wait_run(self.api, dag, run_id, timeout)

    def task_instances(self, dag: str, run_id: str) -> list[dict]:
        """All of the run's task instances, page by page (the API caps a page at 100)."""
        out: list[dict] = []
        while True:
            got = self.api(
                "GET",
                f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(out)},
            )
            assert got.status_code == 200, got.text
            page = got.json()
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def answer_approval(self, dag: str, run_id: str, option: str) -> dict:
        """Wait until approve_deletion asks, then answer as the signed-in person."""
        details = await_approval(self.api, dag, run_id)
        path = f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/approve_deletion/-1/hitlDetails"
        answer = self.api("PATCH", path, json={"chosen_options": [option], "params_input": {}})
        assert answer.status_code == 200, answer.text
        return details


def wait_for_token(
    url: str,
    exited: Callable[[], str | None],
    log_tail: Callable[[], str],
    timeout: float = 180,
    credentials: tuple[str, str] = ("admin", "pw"),
) -> str:
    """A bearer token from the API server once it answers; fail at once if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        problem = exited()
        if problem:
            raise AssertionError(problem)
        try:
            r = httpx.post(
                f"{url}/auth/token",
                json={"username": credentials[0], "password": credentials[1]},
                timeout=5,
            )
            if r.status_code in (200, 201):
                return r.json()["access_token"]
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"no API token after {timeout} s:\n{log_tail()}")


def wait_run(
    api: Callable[..., httpx.Response], dag: str, run_id: str, timeout: float = 600
) -> str:
    """Wait until a DAG run ends; return "success" or "failed"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise AssertionError(f"run {run_id} still not finished after {timeout} s")


def await_approval(
    api: Callable[..., httpx.Response], dag: str, run_id: str, timeout: float = 300
) -> dict:
    """Wait until approve_deletion waits for a person; return its hitlDetails."""
    path = f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/approve_deletion"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = api("GET", path).json()
        if ti.get("state") == "awaiting_input":
            # Airflow 3.3.2 race: an answer within a second of the task parking reaches the
            # scheduler before the executor's "success" for the parking attempt, and the
            # scheduler then marks the task failed. People take longer; so does this test.
            time.sleep(6)
            return api("GET", f"{path}/-1/hitlDetails").json()
        assert ti.get("state") not in ("failed", "upstream_failed"), ti
        time.sleep(2)
    raise AssertionError("approve_deletion never waited for input")


def airflow_env(
    home: Path,
    *,
    executor: str,
    metadata_url: str,
    connections: dict[str, dict],
    plans_dir: Path,
    broker_url: str | None = None,
    parallelism: int = 8,
) -> dict[str, str]:
    """The environment every process of one deployment shares."""
    from cryptography.fernet import Fernet

    home.mkdir(parents=True, exist_ok=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "pw"}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in connections.items()})
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.worker_name.hostname",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{ROOT}",
            "RETIREMENT_PLANS_DIR": str(plans_dir),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    if broker_url:
        env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata_url.replace(
            "postgresql+psycopg2", "postgresql"
        )
    return env
