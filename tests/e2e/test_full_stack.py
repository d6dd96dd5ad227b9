"""The whole product as a data platform team runs it: docker-compose.yaml's Airflow services
started natively, each with only the environment and mounts its service defines
(tests/e2e/native.py), on PostgreSQL as the metadata database; the full-stack plan (PostgreSQL,
MariaDB and file sources; the stack's SFTP and S3-over-HTTPS destinations through the
connections the compose file defines; a person approves the deletion), once with the
LocalExecutor and once with the compose file's CeleryExecutor and its two worker replicas.

The operator's story: the plan's connections are added with the airflow-cli service, the run is
triggered over the REST API (signed in as the admin user airflow-init created); sshd is down,
so the SFTP transfers fail after their retries and nothing downstream runs or deletes; sshd
comes back, the operator clears the failed tasks (as the UI's "Clear" does), approves the
deletion in the human-in-the-loop endpoint, and the run ends in success. Then the auditor's
checks: the ledger's chain verifies, every certificate verifies, the sources hold nothing in
scope, and the invoices restored from the S3 archive equal the originals exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pymysql
import pytest
import sqlalchemy as sa
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from retirement.crypto.keys import KeyStore
from retirement.evidence.certificate import verify_certificate
from retirement.ledger.core import Ledger
from tests.deploy.compose import compose_config, generate_env
from tests.e2e.compose_stack import ComposeStack
from tests.e2e.native import NativeCompose, Network
from tests.e2e.stack import ROOT, wait_for_token
from tests.servers.databases import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
)
from tests.servers.sshd import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]
DAG = "retire__fullstack"
PG_TABLES = {  # the CRM on PostgreSQL
    "customers": "id BIGINT PRIMARY KEY, name TEXT, id_card TEXT, mobile TEXT, email TEXT, "
    "address TEXT, created_at TEXT",
    "bank_accounts": "id BIGINT PRIMARY KEY, customer_id BIGINT, card_no TEXT, bank TEXT",
    "orders": "order_no BIGINT PRIMARY KEY, customer_id BIGINT, id_number TEXT, "
    "amount DOUBLE PRECISION, status TEXT",
    "complaints": "id BIGINT PRIMARY KEY, customer_id BIGINT, channel TEXT, remark TEXT",
    "marketing_events": "id BIGINT PRIMARY KEY, email TEXT, ip_address TEXT, campaign TEXT",
}
MY_INVOICES = (  # billing on MariaDB
    "invoice_no VARCHAR(32) PRIMARY KEY, customer_id BIGINT, buyer_name VARCHAR(200), "
    "buyer_uscc VARCHAR(18), amount DECIMAL(12,2), issued_on DATE"
)


def _load_sources(crm: Path, pg_url: str, my_url: str) -> None:
    """The demo company's CRM, spread over PostgreSQL (crm) and MariaDB (billing)."""
    with sqlite3.connect(crm) as lite, psycopg.connect(pg_url, autocommit=True) as pg:
        for table, columns in PG_TABLES.items():
            pg.execute(f"CREATE TABLE {table} ({columns})")
            rows = lite.execute(f"SELECT * FROM {table}").fetchall()
            marks = ",".join(["%s"] * len(rows[0]))
            with pg.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        invoices = lite.execute("SELECT * FROM invoices").fetchall()
    my = _mysql(my_url)
    with my.cursor() as cur:
        cur.execute(f"CREATE TABLE invoices ({MY_INVOICES})")
        cur.executemany("INSERT INTO invoices VALUES (%s,%s,%s,%s,%s,%s)", invoices)
    my.commit()
    my.close()


def _mysql(url: str) -> pymysql.Connection:
    u = sa.engine.make_url(url)
    return pymysql.connect(
        host=u.host, port=u.port, user=u.username, password="", database=u.database
    )


def _invoices(url: str) -> list[tuple]:
    my = _mysql(url)
    with my.cursor() as cur:
        cur.execute("SELECT * FROM invoices ORDER BY invoice_no")
        rows = list(cur.fetchall())
    my.close()
    return rows


def _pg_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as pg:
        return {t: pg.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in PG_TABLES}


def _plan(folder: Path, bucket: str) -> Path:
    plan = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    plan.update(
        name="fullstack",
        title="Full stack: PostgreSQL, MariaDB and files to SFTP and S3",
        sources=[
            {"name": "crm", "kind": "postgres", "connection": "fullstack_crm"},
            {"name": "billing", "kind": "mysql", "connection": "fullstack_billing"},
            {"name": "exports", "kind": "files", "connection": "fullstack_exports"},
        ],
        datasets=[
            {
                "dataset": "billing.invoices",
                "disposition": "accounting_archive",
                "key": ["invoice_no"],
            }
        ],
        destinations={
            "archive": {
                "kind": "s3",
                "connection": "stack_s3",
                "bucket": bucket,
                "prefix": "vault",
            },
            "successor_drop": {"kind": "sftp", "connection": "stack_sftp", "path": "drop"},
        },
        approval={
            # FAB's user id of the admin airflow-init creates first (`airflow users list`)
            "approvers": [
                {"name": "Li Wei", "role": "DPO", "email": "dpo@demo-trading.example", "user": "1"}
            ],
            "auto_approve": False,
        },
        retries={"attempts": 1, "delay_seconds": 2, "max_delay_seconds": 4},
        # the customers' columns of this organization's tables (certificates count individuals)
        customer_keys={
            "crm.customers": ["id"],
            "crm.bank_accounts": ["customer_id"],
            "crm.orders": ["customer_id"],
            "crm.complaints": ["customer_id"],
            "crm.marketing_events": ["email"],
            "billing.invoices": ["customer_id"],
        },
    )
    folder.mkdir()
    # the demo's impact assessment, which its plan names by a path beside the plan
    shutil.copytree(ROOT / "include" / "plans" / "assessments", folder / "assessments")
    (folder / "fullstack.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    return folder


@pytest.fixture(params=["LocalExecutor", "CeleryExecutor"])
def deployment(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sshd_server_fresh,
    radosgw,
    s3_lock_bucket: str,
) -> Iterator[dict]:
    """docker-compose.yaml's Airflow services started natively, each with only its service's
    environment (tests/e2e/native.py), on a .env written by `make compose-env`'s code."""
    from retirement.demo import generate

    executor = request.param
    meta = create_pg_database("af_meta")
    ledger_db = create_pg_database("fs_ledger")
    crm_db = create_pg_database("fs_crm")
    billing_db = create_mysql_database("fs_billing")
    generate(tmp_path / "demo", customers=60)
    _load_sources(tmp_path / "demo" / "crm.sqlite", crm_db, billing_db)

    env = generate_env(tmp_path / "project")  # the secrets, fresh; the servers' are the fixtures'
    env.update(
        AIRFLOW_UID=str(os.getuid()),
        S3_ACCESS_KEY=radosgw.access_key,
        S3_SECRET_KEY=radosgw.secret_key,
        SFTP_HOST_KEY=sshd_server_fresh.host_key_base64,
        AIRFLOW_PARALLELISM="8",
        AIRFLOW_WORKER_CONCURRENCY="2",
    )
    my = sa.engine.make_url(billing_db)
    connections = {  # the plan's sources, added by the operator (deploy/README.md)
        "fullstack_crm": _pg_connection(crm_db),
        "fullstack_billing": {
            "conn_type": "mysql",
            "host": my.host,
            "port": my.port,
            "login": my.username,
            "schema": my.database,
        },
        "fullstack_exports": {
            "conn_type": "fs",
            "extra": {"path": str(tmp_path / "demo" / "exports")},
        },
    }
    celery = executor == "CeleryExecutor"
    broker = "redis://:@127.0.0.1:6379/11"
    if celery:
        import redis

        redis.Redis.from_url(broker).flushdb()
    config = compose_config(env)
    native = NativeCompose(
        config,
        tmp_path / "stack",
        binds={
            "config": _folder(tmp_path / "binds" / "config"),
            "logs": _folder(tmp_path / "binds" / "logs"),
            "include/plans": _plan(tmp_path / "plans", s3_lock_bucket),
            "retirement-output": _folder(tmp_path / "out"),
            "deploy/tls/ca.crt": radosgw.ca_bundle,
            "deploy/sftp/airflow_client_key": sshd_server_fresh.client_key_path,
        },
        network=Network(
            services=frozenset(config["services"]),
            databases={"airflow": _driver(meta, "psycopg2"), "retirement": ledger_db},
            addresses={
                "airflow-apiserver:8080": ("127.0.0.1", free_port()),
                "sftp:22": (sshd_server_fresh.host, sshd_server_fresh.port),
                "s3:7480": ("127.0.0.1", radosgw.https_port),
            },
            urls={"redis://:@redis:6379/0": broker},
            logins={"sftp": sshd_server_fresh.user},
        ),
        overrides={"AIRFLOW__CORE__EXECUTOR": executor},
    )
    stack = ComposeStack(
        native,
        executor=executor,
        credentials=(env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"]),
        connections=connections,
    )
    master = tmp_path / "master.key"
    master.write_text(env["RETIREMENT_MASTER_KEY"] + "\n")
    try:
        stack.start()
        yield {
            "stack": stack,
            "executor": executor,
            "sshd": sshd_server_fresh,
            "radosgw": radosgw,
            "bucket": s3_lock_bucket,
            "ledger_url": _driver(ledger_db, "psycopg"),
            "crm": crm_db,
            "billing": billing_db,
            "exports": tmp_path / "demo" / "exports",
            "keys": tmp_path / "stack" / "volumes" / "retirement-keys",
            "master": master,
            "master_secret": env["RETIREMENT_MASTER_KEY"],
            "user": env["_AIRFLOW_WWW_USER_USERNAME"],
            "tmp": tmp_path,
        }
    finally:
        stack.stop()
        for url in (meta, ledger_db, crm_db):
            drop_pg_database(url)
        drop_mysql_database(billing_db)


def _pg_connection(url: str) -> dict:
    u = sa.engine.make_url(url)
    conn = {"conn_type": "postgres", "host": u.host, "port": u.port, "login": u.username}
    return {**conn, "schema": u.database}


def _driver(url: str, driver: str) -> str:
    u = sa.engine.make_url(url).set(drivername=f"postgresql+{driver}")
    return u.render_as_string(hide_password=False)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_an_operators_run_with_a_failed_transfer_cleared_and_approved(deployment: dict) -> None:
    stack: ComposeStack = deployment["stack"]
    originals = _invoices(deployment["billing"])
    counts = _pg_counts(deployment["crm"])
    exports = sorted(p.name for p in deployment["exports"].rglob("*") if p.is_file())
    assert len(originals) == 60
    assert exports

    assert stack.unhealthy() == {}  # every service's own healthcheck passes, run as Docker would
    deployment["sshd"].stop()  # the successor's SFTP server is down
    stack.wait_dag(DAG)
    run_id = stack.trigger(DAG)
    assert stack.wait_run(DAG, run_id) == "failed"

    tis = stack.task_instances(DAG, run_id)
    states = {}
    for ti in tis:
        states.setdefault(ti["task_id"], set()).add(ti["state"])
    assert states["gate_backup"] == {"success"}, stack.log_tails()  # e.g. "Invalid auth token"
    failed = [t for t in tis if t["task_id"] == "transfer" and t["state"] == "failed"]
    assert failed, states
    assert all(t["try_number"] == 2 for t in failed)  # the first try and one retry
    for task in ("gate_transfer", "notify_customers", "deletion_request", "approve_deletion"):
        assert states[task] <= {"upstream_failed", None}, (task, states[task])
    assert states.get("delete", {None}) <= {"upstream_failed", None}
    assert _invoices(deployment["billing"]) == originals  # nothing deleted anywhere
    assert _pg_counts(deployment["crm"]) == counts
    assert sorted(p.name for p in deployment["exports"].rglob("*") if p.is_file()) == exports
    ledger = Ledger.open(deployment["ledger_url"], create=False)
    run = f"{DAG}:{run_id}"
    assert not [e for e in ledger.events(run_id=run) if e.kind.startswith("dataset_delet")]

    if deployment["executor"] == "CeleryExecutor":
        hosts = {t["hostname"] for t in tis if t["task_id"] == "backup"}
        assert hosts == {"airflow-worker-1", "airflow-worker-2"}, hosts  # both replicas

    deployment["sshd"].start()  # back, with the same host key
    cleared = stack.api(
        "POST",
        f"/api/v2/dags/{DAG}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": ["transfer"],
            "only_failed": True,
            "include_downstream": True,
            "reset_dag_runs": True,
        },
    )
    assert cleared.status_code == 200, cleared.text
    details = stack.answer_approval(DAG, run_id, "Approve")
    assert "| billing.invoices |" in details["body"]
    assert stack.wait_run(DAG, run_id) == "success", stack.task_instances(DAG, run_id)

    # The auditor's checks.
    report = ledger.verify()
    assert report.events > 0
    datasets = ledger.dataset_states(run)
    assert {d.state for d in datasets} == {"deleted"}
    keys = KeyStore(deployment["keys"], deployment["master_secret"])
    public = load_pem_public_key(keys.public_signing_key_pem())
    certificates = ledger.artifacts(run, kind="certificate")
    assert len(certificates) == len(datasets)
    for c in certificates:
        verify_certificate(Path(c["location"]), public, ledger)
    assert set(_pg_counts(deployment["crm"]).values()) == {0}
    assert _invoices(deployment["billing"]) == []
    assert not [p for p in deployment["exports"].rglob("*") if p.is_file()]
    (approved,) = [e for e in ledger.events(run_id=run) if e.kind == "deletion_approved"]
    assert approved.payload["approved_by"] == deployment["user"]

    if deployment["executor"] == "LocalExecutor":  # the auth manager's answer: any executor
        _each_person_sees_only_the_plans_they_may_read(stack, run, certificates[0]["id"])

    # The invoices come back from the S3 archive, byte for byte the same rows.
    receipt = next(
        json.loads(a["detail"])
        for a in ledger.artifacts(run, kind="receipt")
        if a["dataset"] == "billing.invoices" and json.loads(a["detail"])["kind"] == "s3"
    )
    ledger.close()
    s3 = deployment["radosgw"].client()
    folder = deployment["tmp"] / "from-s3"
    folder.mkdir()
    prefix = "vault/" + receipt["name"].rsplit("/", 1)[0] + "/"  # the dataset's backup folder
    listed = s3.list_objects_v2(Bucket=deployment["bucket"], Prefix=prefix)["Contents"]
    assert len(listed) == 3  # the age file, its manifest and the manifest's signature
    for obj in listed:
        s3.download_file(deployment["bucket"], obj["Key"], str(folder / obj["Key"].rsplit("/")[-1]))
    (manifest,) = folder.glob("*.manifest.json")
    restored = subprocess.run(
        [
            str(Path(sys.executable).parent / "retirement"),
            "restore",
            str(manifest),
            "--to-db",
            deployment["billing"],
            "--table",
            "invoices",
            "--key-store",
            str(deployment["keys"]),
            "--master-key-file",
            str(deployment["master"]),
            "--reason",
            "e2e: prove the archive restores exactly",
            "--ledger",
            deployment["ledger_url"],
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "include")},
        timeout=120,
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored billing.invoices: 60 rows" in restored.stdout
    assert _invoices(deployment["billing"]) == originals


def _each_person_sees_only_the_plans_they_may_read(
    stack: ComposeStack, run: str, certificate_id: int
) -> None:
    """Two people made with the FAB auth manager's CLI: one whose role may read this plan's DAG,
    one whose role may read no DAG. The Retirement page shows each what their role allows and
    refuses the outsider this plan's certificate and dossier."""
    stack.cli("sync-perm", "--include-dags")  # the DAG's own permission resource
    stack.cli("roles", "create", "Auditors", "Outsiders")
    stack.cli("roles", "add-perms", "Auditors", "-r", f"DAG:{DAG}", "-a", "can_read")
    for name, role in (("auditor", "Auditors"), ("outsider", "Outsiders")):
        stack.cli(
            "users",
            "create",
            "--username",
            name,
            "--password",
            "pw-" + name,
            "--role",
            role,
            "--firstname",
            name,
            "--lastname",
            "e2e",
            "--email",
            f"{name}@example.org",
        )
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run)
    dag_run = run.split(":", 1)[1]
    seen = {}
    for name in ("auditor", "outsider"):
        token = wait_for_token(stack.url, lambda: None, str, credentials=(name, "pw-" + name))
        headers = {"Authorization": f"Bearer {token}"}
        seen[name] = {
            path: httpx.get(f"{stack.url}/retirement{path}", headers=headers, timeout=30)
            for path in (
                "/",
                f"/certificates/{certificate_id}",
                f"/dossier/{safe}/index.html",
                f"/run/{DAG}/{quote(dag_run, safe='')}",
            )
        }
    auditor, outsider = seen["auditor"], seen["outsider"]
    assert [r.status_code for r in auditor.values()] == [200] * 4, auditor
    assert run in auditor["/"].text
    assert outsider["/"].status_code == 200
    assert run not in outsider["/"].text
    assert DAG not in outsider["/"].text
    assert [r.status_code for path, r in outsider.items() if path != "/"] == [403] * 3, outsider
