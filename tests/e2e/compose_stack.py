"""The compose stack's Airflow started natively (tests/e2e/native.py), in the order and with the
commands docker-compose.yaml gives: airflow-init (deploy/airflow/init.sh), the operator's
connections added with the airflow-cli service, then the API server, scheduler, DAG processor,
triggerer and the airflow-worker replicas. Under the LocalExecutor (a variant the test asks
for) there are no workers and the scheduler runs the tasks, so it is started from the
airflow-worker service (its connections and mounts) with the scheduler's command."""

from __future__ import annotations

import json
import subprocess
import time

from tests.e2e.native import IMAGE_ENTRYPOINT, Container, NativeCompose, run_healthcheck
from tests.e2e.stack import AirflowStack, wait_for_token
from tests.servers.sshd import free_port


class ComposeStack(AirflowStack):
    def __init__(
        self,
        native: NativeCompose,
        *,
        executor: str,
        credentials: tuple[str, str],
        connections: dict[str, dict],
    ) -> None:
        api_port = native.network.address("airflow-apiserver", 8080)[1]
        super().__init__(native.base, {"AIRFLOW__API__PORT": str(api_port)})
        self.native = native
        self.executor = executor
        self.credentials = credentials
        self.connections = connections
        self.containers: dict[str, Container] = {}

    def start(self) -> None:
        init = self.native.container("airflow-init", "airflow-init")
        init.env["AIRFLOW_ENTRYPOINT"] = str(IMAGE_ENTRYPOINT)
        self._run(init, init.argv, timeout=600)
        cli = self.native.container("airflow-cli", "airflow-cli")
        for conn_id, conn in self.connections.items():  # as deploy/README.md shows
            self._run(
                cli, [*cli.argv[:1], "connections", "add", conn_id, "--conn-json", json.dumps(conn)]
            )
        api_port = int(self.env["AIRFLOW__API__PORT"])
        n = self.native
        self._spawn_container(
            n.container("airflow-apiserver", "airflow-apiserver", {"AIRFLOW__API__PORT": api_port})
        )
        health = {"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": free_port()}
        if self.executor == "CeleryExecutor":
            scheduler = n.container("airflow-scheduler", "airflow-scheduler", health)
        else:
            scheduler = n.container(
                "airflow-worker", "airflow-scheduler", health, command=["scheduler"]
            )
            scheduler.healthcheck = n.container(
                "airflow-scheduler", "airflow-scheduler", health
            ).healthcheck
        self._spawn_container(scheduler)
        self._spawn_container(n.container("airflow-dag-processor", "airflow-dag-processor"))
        self._spawn_container(n.container("airflow-triggerer", "airflow-triggerer"))
        if self.executor == "CeleryExecutor":
            for i in range(1, n.service("airflow-worker")["deploy"]["replicas"] + 1):
                worker = n.container("airflow-worker", f"airflow-worker-{i}")
                # Celery names a worker celery@<hostname>: the container's, as in Docker.
                worker.argv += ["--celery-hostname", f"celery@{worker.name}"]
                self._spawn_container(worker)
        self.token = wait_for_token(
            self.url,
            self._exited,
            lambda: self.log_tail("airflow-apiserver"),
            credentials=self.credentials,
        )

    def cli(self, *args: str) -> None:
        """``docker compose run airflow-cli airflow ARGS``, as an operator would."""
        cli = self.native.container("airflow-cli", "airflow-cli")
        self._run(cli, [*cli.argv[:1], *args])

    def _run(self, container: Container, argv: list[str], timeout: float = 300) -> None:
        done = subprocess.run(
            argv, env=container.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, (
            f"{container.name}: {' '.join(argv[:3])} failed:\n"
            + (done.stdout + done.stderr)[-4000:]
        )

    def _spawn_container(self, container: Container) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        log = (self.home / "logs" / f"{container.name}.log").open("wb")
        self.containers[container.name] = container
        self.procs[container.name] = subprocess.Popen(
            container.argv,
            env=container.env,
            cwd=container.root / "opt" / "airflow",
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tails(self, chars: int = 1500) -> str:
        """The end of every container's log, for a failure message."""
        return "\n".join(f"--- {name}\n{self.log_tail(name, chars)}" for name in self.procs)

    def _exited(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited:\n{self.log_tail(name)}"
        return None

    def unhealthy(self, timeout: float = 120) -> dict[str, str]:
        """Each container's own healthcheck, retried as Docker would until it passes."""
        failing: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        for name, container in self.containers.items():
            while True:
                done = run_healthcheck(container)
                if done.returncode == 0:
                    failing.pop(name, None)
                    break
                failing[name] = (done.stdout + done.stderr)[-1500:]
                if time.monotonic() > deadline:
                    break
                time.sleep(5)
        return failing
