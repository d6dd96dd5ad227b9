"""The `retirement` command, in process: output, exit codes 0 / 1 / 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.ledger.core import Ledger
from tests.support.backups import backed_up, demo_company

PLANS = Path(__file__).resolve().parents[3] / "include" / "plans"
runner = CliRunner()


def test_plan_check_accepts_the_shipped_plans() -> None:
    result = runner.invoke(app, ["plan", "check", *map(str, sorted(PLANS.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == len(list(PLANS.glob("*.yaml")))
    assert "DAG retire__demo" in result.output


def test_plan_check_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PLANS / "demo.yaml").read_text().replace("years: 30", "years: -1"))
    good = PLANS / "demo.yaml"
    result = runner.invoke(app, ["plan", "check", str(good), str(bad)])
    assert result.exit_code == 1
    line = (PLANS / "demo.yaml").read_text().splitlines().index("      years: 30") + 1
    assert f"{bad}:{line}: dispositions.accounting_archive.retention.years" in result.output
    assert "✓" in result.output  # the good plan is still reported


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["plan", "check"]).exit_code == 2
    assert (
        runner.invoke(app, ["ledger", "verify"], env={"RETIREMENT_LEDGER_URL": ""}).exit_code == 2
    )
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_ledger_verify_ok_and_broken(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    ledger = Ledger.open(url)
    for i in range(3):
        ledger.append("step", actor="t", payload={"i": i})
    head = ledger.head()
    result = runner.invoke(app, ["ledger", "verify", "--ledger", url])
    assert result.exit_code == 0, result.output
    assert f"3 events, chain head {head}" in result.output
    assert (
        runner.invoke(app, ["ledger", "verify", "--ledger", url, "--expect-head", head]).exit_code
        == 0
    )
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET actor = 'x' WHERE seq = 2"))
    ledger.close()
    result = runner.invoke(app, ["ledger", "verify", "--ledger", url])
    assert result.exit_code == 1
    assert "event 2" in result.output


def test_ledger_verify_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ledger", "verify", "--ledger", f"sqlite:///{tmp_path}/none.sqlite"]
    )
    assert result.exit_code == 1
    assert "no ledger file" in result.output


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "retirement"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "plan" in done.stdout
    assert "ledger" in done.stdout


def test_scan_a_database_writes_the_documented_json(tmp_path: Path) -> None:
    import json

    root = demo_company(tmp_path)
    out, html = tmp_path / "scan.json", tmp_path / "scan.html"
    result = runner.invoke(
        app, ["scan", f"sqlite:///{root / 'crm.sqlite'}", "--json", str(out), "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert "6 dataset(s)" in result.output
    data = json.loads(out.read_text())
    by_name = {d["name"]: d for d in data["datasets"]}
    assert by_name["customers"]["class"] == "sensitive"
    assert by_name["customers"]["rows"] == 40
    cols = {c["name"]: c for c in by_name["customers"]["columns"]}
    assert cols["id_card"]["detected"] == "cn_resident_id"
    assert cols["id_card"]["hit_ratio"] == 1.0
    assert cols["id_card"]["class"] == "sensitive"
    assert set(cols["created_at"]) >= {"name", "detected", "hit_ratio", "class"}
    assert "<h1>Inventory of customer data</h1>" in html.read_text()


def test_scan_a_directory(tmp_path: Path) -> None:
    import json

    root = demo_company(tmp_path)
    out = tmp_path / "scan.json"
    result = runner.invoke(
        app, ["scan", str(root / "exports"), "--json", str(out), "--sample-only"]
    )
    assert result.exit_code == 0, result.output
    names = {d["name"]: d for d in json.loads(out.read_text())["datasets"]}
    assert names["customers_2024.csv"]["rows"] == 20
    assert names["contracts/contract_0001.pdf"]["class"] == "sensitive"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("/nonexistent/dir", "is not a directory", id="missing-dir"),
        pytest.param("oracle://u@h/db", "not a database URL", id="unknown-dialect"),
    ],
)
def test_scan_bad_target(tmp_path: Path, target: str, message: str) -> None:
    result = runner.invoke(app, ["scan", target, "--json", str(tmp_path / "x.json")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "x.json").exists()


def test_inventory_a_plan_from_env_connections(tmp_path: Path) -> None:
    import json

    root = demo_company(tmp_path)
    env = {
        "AIRFLOW_CONN_DEMO_CRM": json.dumps(
            {"conn_type": "sqlite", "host": str(root / "crm.sqlite")}
        ),
        "AIRFLOW_CONN_DEMO_EXPORTS": f"fs://?path={root / 'exports'}",
    }
    out = tmp_path / "inv.json"
    result = runner.invoke(
        app, ["inventory", str(PLANS / "demo.yaml"), "--json", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["plan"] == "demo"
    by = {d["dataset"]: d for d in data["datasets"]}
    assert by["crm.invoices"]["disposition"] == "accounting_archive"
    assert by["crm.customers"]["disposition"] == "hand_over"
    assert by["exports.customers_2024.csv"]["disposition"] == "erase"
    assert data["totals"]["sensitive"]["datasets"] >= 4


def test_inventory_names_a_missing_connection(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["inventory", str(PLANS / "demo.yaml"), "--json", str(tmp_path / "x.json")],
        env={"AIRFLOW_CONN_DEMO_CRM": ""},
    )
    assert result.exit_code == 1
    assert "connection demo_crm is not defined: set AIRFLOW_CONN_DEMO_CRM" in result.output


def test_verify_backup_with_key_store_or_recipient_identity(tmp_path: Path) -> None:
    result, master = backed_up(tmp_path)
    store = ["--key-store", str(tmp_path / "keys")]
    ok = runner.invoke(
        app, ["verify-backup", str(result.manifest_path), *store, "--master-key-file", str(master)]
    )
    assert ok.exit_code == 0, ok.output
    assert "crm.customers: 40 rows" in ok.output
    as_recipient = runner.invoke(
        app,
        [
            "verify-backup",
            str(result.manifest_path),
            "--identity",
            str(tmp_path / "successor.key"),
            "--public-key",
            str(tmp_path / "keys" / "signing.pub.pem"),
        ],
    )
    assert as_recipient.exit_code == 0, as_recipient.output
    data = bytearray(result.ciphertext_path.read_bytes())
    data[100] ^= 1
    result.ciphertext_path.write_bytes(bytes(data))
    bad = runner.invoke(
        app, ["verify-backup", str(result.manifest_path), *store, "--master-key-file", str(master)]
    )
    assert bad.exit_code == 1
    assert "altered or truncated" in bad.output


def test_restore_writes_a_verified_csv(tmp_path: Path) -> None:
    import csv
    import io
    import sqlite3

    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    done = runner.invoke(
        app,
        [
            "restore",
            str(result.manifest_path),
            "--to",
            str(out),
            "--key-store",
            str(tmp_path / "keys"),
            "--master-key-file",
            str(master),
        ],
    )
    assert done.exit_code == 0, done.output
    rows = list(csv.reader(io.StringIO((out / "crm.customers.csv").read_text())))
    with sqlite3.connect(tmp_path / "sources" / "crm.sqlite") as db:
        source = db.execute("SELECT id, id_card FROM customers ORDER BY id").fetchall()
    assert [(int(r[0]), r[2]) for r in rows[1:]] == source


def test_restore_keeps_nothing_when_verification_fails(tmp_path: Path) -> None:
    result, _master = backed_up(tmp_path)
    out = tmp_path / "restored"
    wrong = tmp_path / "wrong.key"
    import pyrage

    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    done = runner.invoke(
        app,
        [
            "restore",
            str(result.manifest_path),
            "--to",
            str(out),
            "--identity",
            str(wrong),
            "--public-key",
            str(tmp_path / "keys" / "signing.pub.pem"),
        ],
    )
    assert done.exit_code == 1
    assert "cannot be decrypted" in done.output
    assert list(out.iterdir()) == []


def test_restore_to_db_loads_the_table_and_refuses_a_mismatched_one(tmp_path: Path) -> None:
    import sqlite3

    result, master = backed_up(tmp_path)
    target = tmp_path / "restored.sqlite"
    args = ["--key-store", str(tmp_path / "keys"), "--master-key-file", str(master)]
    url = f"sqlite:///{target}"
    done = runner.invoke(app, ["restore", str(result.manifest_path), "--to-db", url, *args])
    assert done.exit_code == 0, done.output
    assert "40 rows → table customers" in done.output
    with sqlite3.connect(tmp_path / "sources" / "crm.sqlite") as db:
        source = db.execute("SELECT id, id_card FROM customers ORDER BY id").fetchall()
    with sqlite3.connect(target) as db:
        restored = db.execute("SELECT id, id_card FROM customers ORDER BY 0 + id").fetchall()
        db.execute("CREATE TABLE other (id TEXT)")
    assert [(int(i), card) for i, card in restored] == source

    wrong = runner.invoke(
        app, ["restore", str(result.manifest_path), "--to-db", url, "--table", "other", *args]
    )
    assert wrong.exit_code == 1
    assert "table other has no column(s)" in wrong.output
    both = runner.invoke(
        app, ["restore", str(result.manifest_path), "--to-db", url, "--to", str(tmp_path), *args]
    )
    assert both.exit_code == 2
    assert "exactly one of --to DIR or --to-db URL" in both.output
