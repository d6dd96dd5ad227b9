"""`dag.test()` of a plan whose destinations are a real sshd (SFTP) and a real RadosGW (S3 over
HTTPS), with their Airflow connections: deliveries, Object Lock, a changed host key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from retirement.ledger.core import Ledger
from tests.dags.conftest import ROOT, ledger_conn, load_dagbag, task_states

pytestmark = pytest.mark.integration


def _plan(tmp_path: Path, bucket: str) -> Path:
    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan["name"] = "fullstack"
    plan["destinations"] = {
        "archive": {"kind": "s3", "connection": "archive_s3", "bucket": bucket, "prefix": "vault"},
        "successor_drop": {"kind": "sftp", "connection": "successor_sftp", "path": "drop"},
    }
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "fullstack.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    return folder


def _dag(monkeypatch: pytest.MonkeyPatch, plans: Path):
    """dag.test() parses the dags folder again: the plans folder must stay set."""
    monkeypatch.setenv("RETIREMENT_PLANS_DIR", str(plans))
    return load_dagbag().dags["retire__fullstack"]


def _connections(monkeypatch: pytest.MonkeyPatch, sshd, radosgw, **sftp_extra) -> None:
    sftp = {
        "conn_type": "sftp",
        "host": sshd.host,
        "port": sshd.port,
        "login": sshd.user,
        "extra": {**sshd.connection_extra(), **sftp_extra},
    }
    s3 = {
        "conn_type": "aws",
        "login": radosgw.access_key,
        "password": radosgw.secret_key,
        "extra": {**radosgw.connection_extra(), "part_size_mb": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SUCCESSOR_SFTP", json.dumps(sftp))
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3", json.dumps(s3))


def test_deliveries_over_sftp_and_s3_with_object_lock(
    airflow_db: Path,
    demo_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sshd_server_fresh,
    radosgw,
    s3_lock_bucket: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    _connections(monkeypatch, sshd_server_fresh, radosgw)
    dag = _dag(monkeypatch, _plan(tmp_path, s3_lock_bucket))
    dagrun = dag.test()
    assert dagrun.state == "success", task_states(dagrun)
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__fullstack:{dagrun.run_id}"
    receipts = ledger.artifacts(run_id, kind="receipt")
    by_dataset = {}
    for r in receipts:
        by_dataset.setdefault(r["dataset"], []).append(json.loads(r["detail"]))
    invoices = {d["role"]: d for d in by_dataset["crm.invoices"]}
    assert invoices["backup"]["kind"] == "s3"
    assert invoices["backup"]["lock"]["mode"] == "COMPLIANCE"
    until = datetime.fromisoformat(invoices["backup"]["lock"]["retain_until"])
    assert until == datetime(datetime.now(UTC).year + 31, 1, 1, tzinfo=UTC)  # 30 years
    head = radosgw.client().head_object(
        Bucket=s3_lock_bucket,
        Key=f"vault/{invoices['backup']['name']}",
        VersionId=invoices["backup"]["version_id"],
    )
    assert head["ObjectLockMode"] == "COMPLIANCE"
    customers = {d["role"]: d for d in by_dataset["crm.customers"]}
    assert customers["backup"]["kind"] == "sftp"
    on_server = sshd_server_fresh.upload_dir / "drop" / customers["backup"]["name"]
    assert on_server.stat().st_size == customers["backup"]["size"]
    assert (on_server.parent / (on_server.name + ".manifest.json.sig")).exists()
    states = {s.dataset: s.state for s in ledger.dataset_states(run_id)}
    assert states["crm.invoices"] == states["crm.customers"] == "deleted"
    ledger.verify()
    ledger.close()


def test_a_changed_host_key_fails_the_transfer_at_once_and_stops_the_run(
    airflow_db: Path,
    demo_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sshd_server_fresh,
    radosgw,
    s3_bucket: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import paramiko

    impostor = paramiko.Ed25519Key(filename=str(sshd_server_fresh.client_key_path))
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    _connections(
        monkeypatch, sshd_server_fresh, radosgw, host_key=f"ssh-ed25519 {impostor.get_base64()}"
    )
    dag = _dag(monkeypatch, _plan(tmp_path, s3_bucket))
    dagrun = dag.test()
    assert dagrun.state == "failed"
    states = task_states(dagrun)
    assert states["gate_transfer"] == "upstream_failed"
    out, err = capfd.readouterr()
    assert "the server's host key is ssh-ed25519 SHA256:" in out + err
    assert not list((sshd_server_fresh.upload_dir).rglob("*.age"))
