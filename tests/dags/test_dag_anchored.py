"""A whole run through Airflow (``dag.test()``) with an RFC 3161 time-stamping authority named
in the plan: the authority is an Airflow connection like any other, each gate and the seal
time-stamp the chain head (and the seal SHA256SUMS), the tokens reach the dossier and
``openssl ts -verify`` and ``retirement audit --tsa-ca`` accept them. An authority that
cannot be reached fails the first gate, and nothing is backed up or deleted."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from retirement.cli.root import app
from tests.dags.conftest import demo_plan_as, ledger_conn, load_dagbag, task_states
from tests.servers.sshd import free_port
from tests.servers.tsa import run_tsa

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.servers.tsa import LocalTsa

GATES = ("gate_inventory", "gate_backup", "gate_transfer", "gate_deletion")


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    server = run_tsa(tmp_path / "tsa-server")
    yield next(server)
    server.close()


def _airflow_connection(monkeypatch: pytest.MonkeyPatch, port: int, ca_bundle: str) -> None:
    """The authority as an operator would add it: an HTTP connection (https, the TLS CA)."""
    conn = {
        "conn_type": "http",
        "host": "localhost",
        "port": port,
        "schema": "https",
        "extra": {"ca_bundle": ca_bundle, "path": "/tsa", "timeout": 20},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TSA_OPS", json.dumps(conn))


def _plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return demo_plan_as(
        tmp_path, monkeypatch, "anchored", evidence={"timestamp_authority": "tsa_ops"}
    )


def test_a_run_with_an_authority_time_stamps_each_gate_and_the_seal(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    tsa: LocalTsa,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger_conn(monkeypatch, f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path / "out")
    _airflow_connection(monkeypatch, tsa.connection.port or 0, tsa.connection.extra["ca_bundle"])
    dag = load_dagbag(_plans(tmp_path, monkeypatch)).dags["retire__anchored"]
    dagrun = dag.test()
    assert dagrun.state == "success", task_states(dagrun)

    (dossier,) = (tmp_path / "out" / "dossier").iterdir()
    tokens = sorted(dossier.rglob("*.tsr"))
    assert sorted(t.name.split(".")[0] for t in tokens) == sorted([*GATES, "seal", "SHA256SUMS"])
    assert len(tsa.replies) == len(tokens)
    for token in tokens:
        query = token.with_suffix(".tsq")
        checked = subprocess.run(
            ["openssl", "ts", "-verify", "-in", str(token), "-queryfile", str(query)]
            + ["-CAfile", str(tsa.tsa_ca)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, (token.name, checked.stdout, checked.stderr)

    pub = str(dossier / "signing.pub.pem")
    audited = CliRunner().invoke(
        app, ["audit", str(dossier), "--public-key", pub, "--tsa-ca", str(tsa.tsa_ca)]
    )
    assert audited.exit_code == 0, audited.output


def test_an_authority_that_cannot_be_reached_stops_the_run_before_any_backup(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    tsa: LocalTsa,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    _airflow_connection(monkeypatch, free_port(), tsa.connection.extra["ca_bundle"])
    dag = load_dagbag(_plans(tmp_path, monkeypatch)).dags["retire__anchored"]
    dagrun = dag.test()
    states = task_states(dagrun)
    assert dagrun.state == "failed", states
    assert states["gate_inventory"] == "failed"
    assert states["delete"] == "upstream_failed"
    assert not tsa.replies
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        kinds = {k for (k,) in db.execute("SELECT kind FROM events")}
    assert "dataset_inventoried" in kinds, kinds
    later = {"dataset_backed_up", "dataset_deleting", "dataset_deleted", "certificate_issued"}
    assert not kinds & later, kinds
    crm = sqlite3.connect(demo_sources / "crm.sqlite")
    assert crm.execute("SELECT count(*) FROM customers").fetchone()[0] == 60
    crm.close()
