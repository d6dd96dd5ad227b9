"""`retirement preview PLAN` on the demo CRM in PostgreSQL: the report says what a run would
do, and nothing changes (sources, destinations, key store); the ledger holds a preview."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psycopg
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.ledger.core import Ledger
from retirement.model.state import RunState
from tests.support.pg_demo import load_crm, pg_counts

PLANS = Path(__file__).resolve().parents[3] / "include" / "plans"
runner = CliRunner()


def _plan(tmp: Path) -> Path:
    """The demo plan with its CRM on PostgreSQL and its destinations in ``tmp/dest``."""
    plan = yaml.safe_load((PLANS / "demo.yaml").read_text())
    plan["sources"] = [{"name": "crm", "kind": "postgres", "connection": "preview_crm"}]
    for name, folder in (("archive", "archive"), ("successor_drop", "successor")):
        plan["destinations"][name]["path"] = str(tmp / "dest" / folder)
        (tmp / "dest" / folder).mkdir(parents=True)
    path = tmp / "demo.yaml"
    path.write_text(yaml.safe_dump(plan, allow_unicode=True))
    return path


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_preview_on_postgres_reports_and_changes_nothing(tmp_path: Path, pg_url: str) -> None:
    generate(tmp_path / "src", customers=25)
    before = load_crm(tmp_path / "src" / "crm.sqlite", pg_url)
    db = sa.engine.make_url(pg_url)
    conn = {
        "conn_type": "postgres",
        "host": db.host,
        "port": db.port,
        "login": db.username,
        "schema": db.database,
    }
    KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    keys = _tree(tmp_path / "keys")
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    args = ["preview", str(_plan(tmp_path)), "--ledger", ledger_url, "--out", str(tmp_path / "out")]

    result = runner.invoke(app, args, env={"AIRFLOW_CONN_PREVIEW_CRM": json.dumps(conn)})

    assert result.exit_code == 0, result.output
    assert "nothing was backed up, delivered or deleted" in result.output
    assert "total: 6 datasets" in result.output
    (folder,) = (tmp_path / "out" / "preview").iterdir()
    doc = json.loads((folder / "preview.json").read_text())
    rows = {d["dataset"]: d for d in doc["datasets"]}
    assert {name.split(".", 1)[1]: d["rows"] for name, d in rows.items()} == before
    invoices, customers = rows["crm.invoices"], rows["crm.customers"]
    assert (invoices["class"], invoices["disposition"], invoices["backup"]) == (
        "sensitive",
        "accounting_archive",
        True,
    )
    assert invoices["deliveries"] == [
        {
            "destination": "archive",
            "kind": "local",
            "path": f"{tmp_path}/dest/archive/demo/crm.invoices/",
        }
    ]
    assert invoices["deletion"]["scope"] == "rows"
    assert invoices["deletion"]["method"] == (
        "DELETE by key (invoice_no) in batches, each row compared with its backup; then VACUUM"
    )
    assert invoices["deletion"]["bytes"] > 0
    assert invoices["retention_end"].endswith("-01-01")
    assert customers["notices"] == 25
    assert customers["disposition"] == "hand_over"
    assert rows["crm.marketing_events"]["deliveries"] == []
    totals = doc["totals"]
    assert totals["datasets"] == 6
    assert totals["notices"] == 25
    assert totals["deleted_rows"] == sum(before.values())
    assert totals["deliveries"] == 4  # four hand_over tables and the archived invoices
    assert totals["by_disposition"]["accounting_archive"]["datasets"] == 1
    html = (folder / "preview.html").read_text()
    assert "crm.invoices" in html
    assert "PREVIEW" in html
    with psycopg.connect(pg_url) as pg:
        ids = [r[0] for r in pg.execute("SELECT id_card FROM customers")]
    assert not any(value in html or value in json.dumps(doc) for value in ids)
    # nothing changed: source rows, destinations, key store
    assert pg_counts(pg_url, list(before)) == before
    assert [list(p.iterdir()) for p in (tmp_path / "dest").iterdir()] == [[], []]
    assert _tree(tmp_path / "keys") == keys
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["preview"]
    # the ledger: one preview run, only preview events
    ledger = Ledger.open(ledger_url, create=False)
    (run,) = ledger.runs_like("%")
    assert ledger.run_state(run["run_id"]) is RunState.PREVIEW
    assert [e.kind for e in ledger.events()] == [
        "preview_started",
        "preview_inventoried",
        "preview_reported",
    ]
    assert ledger.dataset_states(run["run_id"]) == []
    ledger.verify()
    ledger.close()


def test_preview_of_an_unreachable_source_fails_the_preview(tmp_path: Path) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    args = ["preview", str(_plan(tmp_path)), "--ledger", ledger_url, "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args, env={"AIRFLOW_CONN_PREVIEW_CRM": ""})
    assert result.exit_code == 1
    assert "connection preview_crm is not defined" in result.output
    ledger = Ledger.open(ledger_url, create=False)
    (run,) = ledger.runs_like("%")
    assert ledger.run_state(run["run_id"]) is RunState.FAILED
    assert [e.kind for e in ledger.events()] == ["preview_started", "run_failed"]
    ledger.close()
