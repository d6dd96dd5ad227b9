"""`dag.test()` with ``dry_run``: plan_check, inventory and the preview report, then every
later task skipped, and nothing written to the sources, the destinations or the key store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from retirement.ledger.core import Ledger
from retirement.model.state import RunState
from tests.dags.conftest import ledger_conn, load_dagbag, task_states

RAN = {"plan_check", "inventory", "preview"}


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_dry_run_previews_and_skips_everything_after(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    out = tmp_path / "out"
    ledger_conn(monkeypatch, url, out)
    rows, sources, keys = (
        _counts(demo_sources / "crm.sqlite"),
        _tree(demo_sources),
        _tree(tmp_path / "keys"),
    )
    dag = load_dagbag().dags["retire__demo"]

    dagrun = dag.test(run_conf={"dry_run": True})

    states = task_states(dagrun)
    assert {t for t, st in states.items() if st == "success"} == RAN, states
    assert {st for t, st in states.items() if t not in RAN} == {"skipped"}, states
    assert dagrun.state == "success"
    # nothing changed at the sources, no destination or vault written, no key made
    assert _counts(demo_sources / "crm.sqlite") == rows
    assert rows["customers"] == 60
    assert _tree(demo_sources) == sources
    assert _tree(tmp_path / "keys") == keys
    assert sorted(p.name for p in out.iterdir()) == ["preview"]
    (folder,) = (out / "preview").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["preview.html", "preview.json"]
    report = json.loads((folder / "preview.json").read_text())
    by_name = {d["dataset"]: d for d in report["datasets"]}
    assert by_name["crm.customers"]["deletion"]["rows"] == 60
    assert by_name["crm.customers"]["notices"] == 60  # one per customer e-mail
    assert report["totals"]["datasets"] == len(by_name) == 11
    # the ledger: a preview run, only preview events, never a dataset state
    ledger = Ledger.open(url, create=False)
    run_id = f"retire__demo:{dagrun.run_id}"
    assert ledger.run_state(run_id) is RunState.PREVIEW
    assert ledger.is_preview(run_id)
    kinds = [e.kind for e in ledger.events()]
    assert kinds[0] == "preview_started"
    assert set(kinds) == {"preview_started", "preview_inventoried", "preview_reported"}
    assert kinds.count("preview_inventoried") == 2  # crm and exports
    assert ledger.dataset_states(run_id) == []
    (reported,) = [e for e in ledger.events() if e.kind == "preview_reported"]
    assert (
        reported.payload["json_sha256"]
        == hashlib.sha256((folder / "preview.json").read_bytes()).hexdigest()
    )
    ledger.verify()
    ledger.close()


def test_a_real_run_passes_the_preview_task(
    airflow_db: Path, tmp_path: Path, demo_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without dry_run the preview task lets the run go on (to gate_inventory here: a rule
    naming a missing table stops it there, so the test stays short) and writes no report."""
    plans = tmp_path / "plans"
    plans.mkdir()
    text = (Path(__file__).resolve().parents[2] / "include/plans/demo.yaml").read_text()
    (plans / "demo.yaml").write_text(text.replace("- dataset: crm.invoices", "- dataset: crm.x"))
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    dagrun = load_dagbag(plans).dags["retire__demo"].test()
    states = task_states(dagrun)
    assert states["preview"] == "success"
    assert states["gate_inventory"] == "failed"  # it ran: the preview did not stop the run
    ledger = Ledger.open(url, create=False)
    kinds = {e.kind for e in ledger.events()}
    assert "run_started" in kinds
    assert not {k for k in kinds if k.startswith("preview_")}
    assert not (tmp_path / "out" / "preview").exists()
    ledger.close()
