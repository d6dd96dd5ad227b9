"""Root conftest: an isolated Airflow home for the session, and the real test servers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import: give every test session its own home and
# SQLite metadata database before anything imports airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="retirement-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))

pytest_plugins = [
    "tests.servers.databases",
    "tests.servers.sshd",
    "tests.servers.radosgw",
    "tests.servers.pg_tls",
]


def pytest_unconfigure(config: object) -> None:
    """Remove the session's Airflow home."""
    import shutil

    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
