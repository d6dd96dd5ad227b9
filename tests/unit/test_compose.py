"""docker-compose.yaml describes the production topology (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
]


def _default(value: str) -> str:
    """Resolve ${VAR:-default} the way compose does when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.mark.parametrize("name", [*AIRFLOW, "postgres", "redis", "sftp", "minio"])
def test_service_exists_with_an_image(name: str) -> None:
    assert name in SERVICES
    assert SERVICES[name]["image"]


@pytest.mark.parametrize("name", AIRFLOW)
def test_airflow_services(name: str) -> None:
    svc = SERVICES[name]
    assert _default(svc["image"]) == "apache/airflow:3.3.2-python3.11"
    env = svc["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert _default(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["PYTHONPATH"] == "/opt/airflow/include"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
    for folder in ("dags", "plugins", "include"):
        assert mounts[f"/opt/airflow/{folder}"] == f"./{folder}"
        assert (ROOT / folder).is_dir()


@pytest.mark.parametrize(
    ("name", "command"),
    [
        pytest.param("airflow-apiserver", "api-server", id="api-server"),
        pytest.param("airflow-scheduler", "scheduler", id="scheduler"),
        pytest.param("airflow-dag-processor", "dag-processor", id="dag-processor"),
        pytest.param("airflow-triggerer", "triggerer", id="triggerer"),
        pytest.param("airflow-worker", "celery worker", id="worker"),
    ],
)
def test_airflow_commands(name: str, command: str) -> None:
    assert SERVICES[name]["command"] == command


def test_workers_scale_and_init_migrates() -> None:
    assert _default(str(SERVICES["airflow-worker"]["deploy"]["replicas"])) == "2"
    assert SERVICES["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_ledger_database_is_created_and_pointed_to() -> None:
    init = [v for v in SERVICES["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init
    host_path = init[0].split(":")[0]
    assert "CREATE DATABASE retirement" in (ROOT / host_path).read_text()
    ledger = yaml.safe_load(
        SERVICES["airflow-worker"]["environment"]["AIRFLOW_CONN_RETIREMENT_LEDGER"].replace(
            "${POSTGRES_PASSWORD:-airflow}", "airflow"
        )
    )
    assert ledger["schema"] == "retirement"
    assert ledger["extra"]["output_dir"]


def test_no_tls_or_host_key_checks_switched_off() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "verify=False" not in text
    assert '"verify": false' not in text
    assert 'no_host_key_check": true' not in text
