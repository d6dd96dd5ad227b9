"""deploy/helm/values.yaml for Airflow's official chart: validated against the chart keys it
uses (deploy/helm/values.schema.json; no helm binary or chart is installable from a package
registry here, so `helm template` cannot run) and kept in step with the compose stack."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.compose import COMPOSE_FILE, ROOT

HELM = ROOT / "deploy" / "helm"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HELM / "values.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((HELM / "values.schema.json").read_text())
    return loaded


def test_values_match_the_chart_schema(values: dict, schema: dict) -> None:
    jsonschema.validate(values, schema)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"executer": "CeleryExecutor"}, id="misspelt-key"),
        pytest.param({"executor": "SequentialExecutor"}, id="unknown-executor"),
        pytest.param({"workers": {"replicas": "2"}}, id="replicas-as-text"),
        pytest.param({"airflowVersion": "2.10.5"}, id="airflow-2"),
    ],
)
def test_the_schema_refuses_mistakes(values: dict, schema: dict, change: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**values, **change}, schema)


@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor"])
def test_both_executors_validate(values: dict, schema: dict, executor: str) -> None:
    jsonschema.validate({**values, "executor": executor}, schema)


def test_in_step_with_the_compose_stack(values: dict) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    common = compose["x-airflow-common"]["environment"]
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert f"apache-airflow=={values['airflowVersion']}" in pins
    assert values["images"]["airflow"]["tag"] == common_image_tag(compose)
    assert values["config"]["core"]["auth_manager"] == common["AIRFLOW__CORE__AUTH_MANAGER"]
    assert values["config"]["api_auth"]["jwt_issuer"] == common["AIRFLOW__API_AUTH__JWT_ISSUER"]
    plans = {e["name"]: e.get("value") for e in values["env"]}["RETIREMENT_PLANS_DIR"]
    assert plans == common["RETIREMENT_PLANS_DIR"]
    assert plans in {m["mountPath"] for m in values["volumeMounts"]}


def test_the_master_key_only_reaches_the_workers(values: dict) -> None:
    everywhere = {s["envName"] for s in values["secret"]} | {e["name"] for e in values["env"]}
    assert "AIRFLOW_CONN_RETIREMENT_KEYS" not in everywhere
    workers = {e["name"] for e in values["workers"]["env"]}
    assert "AIRFLOW_CONN_RETIREMENT_KEYS" in workers
    mounts = {m["mountPath"] for m in values["workers"]["extraVolumeMounts"]}
    assert "/opt/airflow/keys" in mounts
    assert "AIRFLOW_CONN_RETIREMENT_LEDGER" in everywhere


def common_image_tag(compose: dict) -> str:
    image: str = compose["x-airflow-common"]["image"]  # ${RETIREMENT_IMAGE:-name:tag}
    return image.rstrip("}").rsplit(":", 1)[1]
