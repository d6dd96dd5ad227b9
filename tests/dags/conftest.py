"""Airflow fixtures: a migrated metadata database for the session, DagBag loading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
