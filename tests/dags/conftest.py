"""Airflow fixtures: a migrated metadata database for the session, DagBag loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata database (AIRFLOW_HOME from the root conftest)."""
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(os.environ["AIRFLOW_HOME"])


def load_dagbag(plans_dir: Path | None = None):  # airflow type stays local
    from airflow.dag_processing.dagbag import DagBag

    old = os.environ.get("RETIREMENT_PLANS_DIR")
    if plans_dir is not None:
        os.environ["RETIREMENT_PLANS_DIR"] = str(plans_dir)
    try:
        return DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        if plans_dir is not None:
            if old is None:
                os.environ.pop("RETIREMENT_PLANS_DIR", None)
            else:
                os.environ["RETIREMENT_PLANS_DIR"] = old


def ledger_conn(monkeypatch: pytest.MonkeyPatch, url: str, output: Path | None = None) -> None:
    extra = {"url": url, **({"output_dir": str(output)} if output else {})}
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETIREMENT_LEDGER", json.dumps({"conn_type": "generic", "extra": extra})
    )


@pytest.fixture
def demo_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo company's CRM and exports, with their Airflow connections."""
    from retirement.demo import generate

    root = tmp_path / "sources"
    generate(root, customers=60)
    crm = {"conn_type": "sqlite", "host": str(root / "crm.sqlite")}
    exports = {"conn_type": "fs", "extra": {"path": str(root / "exports")}}
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_CRM", json.dumps(crm))
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_EXPORTS", json.dumps(exports))
    from retirement.crypto.keys import KeyStore

    master = KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    keys = {"conn_type": "generic", "password": master, "extra": {"path": str(tmp_path / "keys")}}
    monkeypatch.setenv("AIRFLOW_CONN_RETIREMENT_KEYS", json.dumps(keys))
    return root


def task_states(dagrun: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def demo_plan_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any
) -> Path:
    """A plans folder holding the demo plan renamed ``name`` with ``changes`` to its top-level
    blocks, set as RETIREMENT_PLANS_DIR (dag.test() parses the DAG file again)."""
    import yaml

    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan.update(name=name, **changes)
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    monkeypatch.setenv("RETIREMENT_PLANS_DIR", str(folder))
    return folder
