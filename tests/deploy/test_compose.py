"""docker-compose.yaml as Compose v2 reads it (`docker compose config`, no Docker engine): the
points a stack needs to start and run a retirement, checked on the normalized project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose import COMPOSE_FILE, ROOT, compose_config, generate_env, run_compose

AIRFLOW = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "airflow-cli",
    "flower",
]
LONG_RUNNING = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
    "postgres",
    "redis",
    "sftp",
    "s3",
]
REQUIRED = [  # what `make compose-env` writes and the stack refuses to start without
    "AIRFLOW_UID",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "POSTGRES_PASSWORD",
    "RETIREMENT_DB_PASSWORD",
    "RETIREMENT_MASTER_KEY",
    "_AIRFLOW_WWW_USER_PASSWORD",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "SFTP_HOST_KEY",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return generate_env(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def config(env: dict[str, str]) -> dict[str, Any]:
    return compose_config(env)


def _env(config: dict[str, Any], service: str) -> dict[str, str]:
    return config["services"][service]["environment"]


def _mounts(config: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in config["services"][service].get("volumes", [])}


def _connection(config: dict[str, Any], service: str, conn_id: str) -> dict[str, Any]:
    value = _env(config, service).get(f"AIRFLOW_CONN_{conn_id.upper()}")
    assert value, f"{service} has no {conn_id} connection"
    conn: dict[str, Any] = json.loads(value)
    return conn


@pytest.mark.parametrize("name", REQUIRED)
def test_the_stack_refuses_to_start_without_each_secret(env: dict[str, str], name: str) -> None:
    done = run_compose("config", "--quiet", env={k: v for k, v in env.items() if k != name})
    assert done.returncode != 0
    assert name in done.stderr
    assert "make compose-env" in done.stderr


def test_services(config: dict[str, Any]) -> None:
    assert sorted(config["services"]) == sorted([*AIRFLOW, "postgres", "redis", "sftp", "s3"])
    assert config["services"]["flower"]["profiles"] == ["flower"]
    assert config["services"]["flower"]["command"] == ["celery", "flower"]


@pytest.mark.parametrize("name", AIRFLOW)
def test_airflow_services_run_the_baked_image(config: dict[str, Any], name: str) -> None:
    svc = config["services"][name]
    assert svc["build"]["context"] == str(ROOT)
    assert svc["build"]["dockerfile"] == "Dockerfile"
    assert svc["image"] == config["services"]["airflow-apiserver"]["image"]
    assert not [k for k in svc["environment"] if k.startswith("_PIP")]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text()


@pytest.mark.parametrize("name", AIRFLOW)
def test_one_config_one_jwt_secret_one_fernet_key(
    config: dict[str, Any], env: dict[str, str], name: str
) -> None:
    e = _env(config, name)
    assert e["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert e["AIRFLOW__API_AUTH__JWT_ISSUER"] == "retirement"
    assert e["AIRFLOW__API__SECRET_KEY"] == env["AIRFLOW__API__SECRET_KEY"]
    assert e["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW__CORE__FERNET_KEY"]
    assert e["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg"
    assert _mounts(config, name)["/opt/airflow/config"]["source"] == str(ROOT / "config")
    assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "MAX_MAP_LENGTH" not in " ".join(e)  # docs/plan.md: Airflow's default (1024)


def test_the_fernet_key_is_required_in_the_file() -> None:
    common = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW__CORE__FERNET_KEY:?")
    assert common["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW__API_AUTH__JWT_SECRET:?")


def test_auth_manager_is_installed_from_the_pins(config: dict[str, Any]) -> None:
    from importlib import import_module
    from importlib.metadata import version

    path = _env(config, "airflow-apiserver")["AIRFLOW__CORE__AUTH_MANAGER"]
    module, _, cls = path.rpartition(".")
    assert getattr(import_module(module), cls).__name__ == cls
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert f"apache-airflow-providers-fab=={version('apache-airflow-providers-fab')}" in pins


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_healthchecks(config: dict[str, Any], name: str) -> None:
    check = config["services"][name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert len(check["test"]) > 1


@pytest.mark.parametrize("name", [n for n in AIRFLOW if n not in ("airflow-init", "airflow-cli")])
def test_airflow_waits_for_init_and_healthy_servers(config: dict[str, Any], name: str) -> None:
    deps = config["services"][name]["depends_on"]
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    if name == "airflow-worker":
        assert deps["airflow-apiserver"]["condition"] == "service_healthy"


def test_only_init_starts_as_root_and_drops_it(config: dict[str, Any], env: dict[str, str]) -> None:
    for name in AIRFLOW:
        user = config["services"][name]["user"]
        assert user == ("0:0" if name == "airflow-init" else f"{env['AIRFLOW_UID']}:0"), name
    init = config["services"]["airflow-init"]
    assert init["entrypoint"] == ["/opt/retirement/init.sh"]
    script = (ROOT / "deploy" / "airflow" / "init.sh").read_text()
    assert 'exec setpriv --reuid="$AIRFLOW_UID"' in script
    assert "airflow config list" in script
    assert init["environment"]["AIRFLOW_UID"] == env["AIRFLOW_UID"]  # not the image's 50000
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    # what it hands to the airflow user is what the others mount
    assert set(init["command"]) == set(_mounts(config, "airflow-init")) - {"/opt/airflow/plans"}


def test_ledger_and_key_store_connections(config: dict[str, Any], env: dict[str, str]) -> None:
    for name in ("airflow-worker", "airflow-apiserver"):
        ledger = _connection(config, name, "retirement_ledger")
        assert (ledger["host"], ledger["schema"], ledger["login"]) == (
            "postgres",
            "retirement",
            "retirement",
        )
        assert ledger["password"] == env["RETIREMENT_DB_PASSWORD"]
        assert ledger["extra"]["output_dir"] in _mounts(config, name)
    keys = _connection(config, "airflow-worker", "retirement_keys")
    assert keys["password"] == env["RETIREMENT_MASTER_KEY"]
    store = _mounts(config, "airflow-worker")[keys["extra"]["path"]]
    assert (store["type"], store["source"]) == ("volume", "retirement-keys")
    assert "retirement-keys" in config["volumes"]
    for name in AIRFLOW:  # the master key only where tasks run
        if name != "airflow-worker":
            assert "AIRFLOW_CONN_RETIREMENT_KEYS" not in _env(config, name), name
    sql = (ROOT / "deploy" / "postgres" / "10-retirement.sh").read_text()
    assert "CREATE DATABASE" in sql
    mounts = _mounts(config, "postgres")
    assert mounts["/docker-entrypoint-initdb.d/10-retirement.sh"]["source"] == str(
        ROOT / "deploy" / "postgres" / "10-retirement.sh"
    )


def test_destinations_pin_their_keys_and_verify_tls(
    config: dict[str, Any], env: dict[str, str]
) -> None:
    sftp = _connection(config, "airflow-worker", "stack_sftp")
    assert (sftp["host"], sftp["port"]) == ("sftp", 22)
    assert sftp["extra"]["host_key"] == env["SFTP_HOST_KEY"]
    assert sftp["extra"]["no_host_key_check"] is False
    assert sftp["extra"]["key_file"] in _mounts(config, "airflow-worker")
    s3 = _connection(config, "airflow-worker", "stack_s3")
    assert s3["extra"]["endpoint_url"] == "https://s3:7480"
    assert s3["extra"]["verify"] in _mounts(config, "airflow-worker")
    assert (s3["login"], s3["password"]) == (env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"])
    text = COMPOSE_FILE.read_text()
    assert '"verify": false' not in text
    assert '"no_host_key_check": true' not in text


@pytest.mark.parametrize(
    ("name", "folder", "pinned"),
    [
        pytest.param("s3", "deploy/s3", "radosgw=16.2.*", id="s3-radosgw"),
        pytest.param("sftp", "deploy/sftp", "openssh-server=1:9.2p1-*", id="sftp-openssh"),
    ],
)
def test_server_images_are_built_from_pinned_versions(
    config: dict[str, Any], name: str, folder: str, pinned: str
) -> None:
    svc = config["services"][name]
    assert svc["build"]["context"] == str(ROOT / folder)
    dockerfile = (ROOT / folder / "Dockerfile").read_text()
    assert "FROM debian:12-slim" in dockerfile
    assert pinned in dockerfile
    assert ":" in svc["image"]


def test_no_file_becomes_a_directory_by_accident(config: dict[str, Any], tmp_path: Path) -> None:
    """Every bind-mounted file must exist or the stack refuses to start: Compose creates a
    missing bind source as a directory unless told not to."""
    generated = tmp_path
    generate_env(generated)
    files = 0
    for name, svc in config["services"].items():
        for mount in svc.get("volumes", []):
            if mount["type"] != "bind":
                continue
            source = Path(mount["source"])
            relative = source.relative_to(ROOT)
            if (generated / relative).is_file() or source.is_file():
                files += 1
                assert not mount.get("bind", {}).get("create_host_path"), (name, mount)
    assert files >= 7  # CA, S3 certificate and key, SFTP host key, authorized keys, ...


def test_ports_are_published_on_loopback_only(config: dict[str, Any]) -> None:
    published = [
        (name, p) for name, svc in config["services"].items() for p in svc.get("ports", [])
    ]
    assert {name for name, _ in published} == {"airflow-apiserver", "flower"}
    for _, port in published:
        assert port["host_ip"] == "127.0.0.1"


def test_workers_scale(config: dict[str, Any]) -> None:
    assert config["services"]["airflow-worker"]["deploy"]["replicas"] == 2
    worker = _env(config, "airflow-worker")
    assert worker["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:6379" in worker["AIRFLOW__CELERY__BROKER_URL"]
