"""Named approvers and the two-person rule over the REST API, as each person signed in to a
running Airflow with the FAB auth manager (docker-compose.yaml's): a user the plan does not
name is refused, the first approver cannot answer the second approval too, and the deletion
runs only after two distinct named approvers approved; the certificates list both."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from retirement.crypto.keys import KeyStore
from retirement.ledger.core import Ledger
from tests.e2e.stack import AIRFLOW, ROOT, AirflowStack, airflow_env
from tests.servers.databases import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]
DAG = "retire__twoperson"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
PEOPLE = ("admin", "alice", "bob", "mallory")  # mallory may use Airflow, the plan names her not


def _password(name: str) -> str:
    return "pw" if name == "admin" else f"{name}-pw"  # admin's: what AirflowStack signs in with


def _plan(folder: Path, ids: dict[str, str]) -> Path:
    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan["name"] = "twoperson"
    plan["approval"] = {
        "approvers": [
            {"name": "Alice", "role": "DPO", "user": ids["alice"]},
            {"name": "Bob", "role": "legal representative", "user": ids["bob"]},
        ],
        "required": 2,
    }
    folder.mkdir()
    (folder / "twoperson.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    return folder


def _users(env: dict[str, str]) -> dict[str, str]:
    """Create the people (all Admin: being refused is the plan's doing, not the role's);
    their FAB user ids."""
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in PEOPLE:
        made = subprocess.run(
            [AIRFLOW, "users", "create", "--username", name, "--password", _password(name),
             "--role", "Admin", "--firstname", name, "--lastname", "x",
             "--email", f"{name}@example.com"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-3000:]
    listed = subprocess.run(
        [AIRFLOW, "users", "list", "-o", "json"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    (users,) = [line for line in listed.stdout.splitlines() if line.startswith("[{")]
    return {u["username"]: str(u["id"]) for u in json.loads(users)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowStack, Path]]:
    from retirement.demo import generate

    tmp = tmp_path_factory.mktemp("approvers")
    generate(tmp / "sources", customers=20)
    master = KeyStore.new_master_key(tmp / "keys" / "master.key")
    meta = create_pg_database("af_approvers")
    metadata = sa.engine.make_url(meta).set(drivername="postgresql+psycopg2")
    connections = {
        "retirement_ledger": {
            "conn_type": "generic",
            "extra": {"url": f"sqlite:///{tmp / 'ledger.sqlite'}", "output_dir": str(tmp / "out")},
        },
        "retirement_keys": {
            "conn_type": "generic",
            "password": master,
            "extra": {"path": str(tmp / "keys")},
        },
        "demo_crm": {"conn_type": "sqlite", "host": str(tmp / "sources" / "crm.sqlite")},
        "demo_exports": {"conn_type": "fs", "extra": {"path": str(tmp / "sources" / "exports")}},
    }
    env = airflow_env(
        tmp / "airflow",
        executor="LocalExecutor",
        metadata_url=metadata.render_as_string(hide_password=False),
        connections=connections,
        plans_dir=tmp / "plans",
    )
    env["AIRFLOW__CORE__AUTH_MANAGER"] = FAB
    _plan(tmp / "plans", _users(env))
    airflow = AirflowStack(tmp / "airflow", env)
    try:
        airflow.start()
        yield airflow, tmp
    finally:
        airflow.stop()
        drop_pg_database(meta)


def _token(stack: AirflowStack, name: str) -> str:
    got = httpx.post(
        f"{stack.url}/auth/token", json={"username": name, "password": _password(name)}, timeout=10
    )
    assert got.status_code in (200, 201), got.text
    return str(got.json()["access_token"])


def _answer(stack: AirflowStack, run_id: str, task: str, name: str) -> httpx.Response:
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task}/-1/hitlDetails"
    return httpx.patch(
        f"{stack.url}{path}",
        headers={"Authorization": f"Bearer {_token(stack, name)}"},
        json={"chosen_options": ["Approve"], "params_input": {}},
        timeout=30,
    )


def _waiting(stack: AirflowStack, run_id: str, task: str, timeout: float = 300) -> dict:
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = stack.api("GET", path).json()
        if ti.get("state") == "awaiting_input":
            time.sleep(6)  # an answer within a second of parking races the scheduler (3.3.2)
            return dict(stack.api("GET", f"{path}/-1/hitlDetails").json())
        assert ti.get("state") not in ("failed", "upstream_failed"), ti
        time.sleep(2)
    raise AssertionError(f"{task} never waited for input:\n{stack.log_tail('scheduler')}")


def test_two_named_approvers_are_needed_and_others_are_refused(
    stack: tuple[AirflowStack, Path],
) -> None:
    airflow, tmp = stack
    airflow.wait_dag(DAG)
    run_id = airflow.trigger(DAG)

    first = _waiting(airflow, run_id, "approve_deletion")
    assert {u["name"] for u in first["assigned_users"]} == {"Alice", "Bob"}
    assert "plan sha256 `" in first["body"]
    assert "chain head `" in first["body"]
    refused = _answer(airflow, run_id, "approve_deletion", "mallory")
    assert refused.status_code == 403, refused.text
    assert _answer(airflow, run_id, "approve_deletion", "admin").status_code == 403
    assert _answer(airflow, run_id, "approve_deletion", "alice").status_code == 200

    second = _waiting(airflow, run_id, "approve_deletion_2")
    assert [u["name"] for u in second["assigned_users"]] == ["Bob"]
    again = _answer(airflow, run_id, "approve_deletion_2", "alice")
    assert again.status_code == 403, again.text  # the same person cannot be both
    ledger = Ledger.open(f"sqlite:///{tmp / 'ledger.sqlite'}", create=False)
    run = f"{DAG}:{run_id}"
    assert not ledger.events_of(run, ("dataset_deleting",))  # one approval deletes nothing
    assert _answer(airflow, run_id, "approve_deletion_2", "bob").status_code == 200
    assert airflow.wait_run(DAG, run_id) == "success"

    final = ledger.events_of(run, ("deletion_approved",))[-1].payload
    assert [a["by"] for a in final["approvals"]] == ["alice", "bob"]
    certificates = ledger.artifacts(run, kind="certificate")
    assert certificates
    for c in certificates:
        approval = json.loads(Path(c["location"]).read_text())["approval"]
        assert [a["by"] for a in approval["approvers"]] == ["alice", "bob"]
    ledger.verify()
    ledger.close()
