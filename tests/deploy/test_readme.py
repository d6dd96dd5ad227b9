"""deploy/README.md's commands are exactly the ones these tests check, each by what it needs
from the stack (no Docker engine here to run `up`)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import ROOT, compose_config, generate_env, run_compose

README = ROOT / "deploy" / "README.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return generate_env(tmp_path_factory.mktemp("readme"))


def check_start(env: dict[str, str], words: list[str]) -> None:
    """`make compose-env && docker compose up`: what compose-env writes is all `up` needs (the
    script itself: tests/deploy/test_compose_env.py; the services run: tests/e2e)."""
    assert words == ["make", "compose-env", "&&", "docker", "compose", "up"]
    done = run_compose("config", "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    assert run_compose("config", "--quiet", env={}).returncode != 0  # and without it, no start


def check_scale(env: dict[str, str], words: list[str]) -> None:
    """`--scale airflow-worker=4`: nothing in the worker stops a second replica (a fixed
    container name, a published port)."""
    assert words[:3] == ["docker", "compose", "up"]
    service, count = words[words.index("--scale") + 1].split("=")
    worker = compose_config(env)["services"][service]
    assert int(count) > worker["deploy"]["replicas"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker["command"] == ["celery", "worker"]


def check_flower(env: dict[str, str], words: list[str]) -> None:
    assert words == ["docker", "compose", "--profile", "flower", "up"]
    listed = run_compose("--profile", "flower", "config", "--services", env=env)
    assert "flower" in listed.stdout.split()
    plain = run_compose("config", "--services", env=env)
    assert "flower" not in plain.stdout.split()  # only with the profile


def check_connection(env: dict[str, str], words: list[str]) -> None:
    """`run --rm airflow-cli connections add ID --conn-json JSON`: the service runs airflow's
    subcommands with the Fernet key (tests/e2e/compose_stack.py adds the full-stack plan's
    connections this way) and the JSON is a connection."""
    assert words[:5] == ["docker", "compose", "run", "--rm", "airflow-cli"]
    assert words[5:7] == ["connections", "add"]
    cli = compose_config(env)["services"]["airflow-cli"]
    assert cli["environment"]["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW__CORE__FERNET_KEY"]
    conn: dict[str, Any] = json.loads(words[words.index("--conn-json") + 1])
    assert conn["conn_type"] == "postgres"
    assert {"host", "login", "password", "schema"} <= set(conn)


CHECKED: dict[str, Callable[[dict[str, str], list[str]], None]] = {
    "make compose-env && docker compose up": check_start,
    "docker compose up --scale airflow-worker=4": check_scale,
    "docker compose --profile flower up": check_flower,
    "docker compose run --rm airflow-cli connections add crm --conn-json": check_connection,
}


def _checker(command: str) -> Callable[[dict[str, str], list[str]], None]:
    for prefix, check in CHECKED.items():
        if command == prefix or command.startswith(prefix + " "):
            return check
    raise AssertionError(f"deploy/README.md: no test checks {command!r}")


def test_every_command_is_checked_and_every_check_is_in_the_readme() -> None:
    commands = _commands()
    assert {p for p in CHECKED for c in commands if c == p or c.startswith(p + " ")} == set(CHECKED)
    for command in commands:
        _checker(command)


@pytest.mark.parametrize("command", _commands())
def test_command(env: dict[str, str], command: str) -> None:
    _checker(command)(env, shlex.split(command))


def test_paths_named_in_the_readme_exist(tmp_path: Path) -> None:
    """In the project, or written by `make compose-env`."""
    generate_env(tmp_path)
    for path in re.findall(r"`((?:deploy|tests|scripts|docs)/[\w./-]+)`", README.read_text()):
        assert (ROOT / path).exists() or (tmp_path / path).exists(), path
