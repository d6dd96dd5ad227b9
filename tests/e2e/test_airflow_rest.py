"""A running Airflow (API server, scheduler, DAG processor, triggerer; LocalExecutor), driven over
its REST API as an operator would: unpause, trigger, watch, clear a task and re-run it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from retirement.crypto.keys import KeyStore
from retirement.ledger.core import Ledger
from tests.e2e.stack import await_approval, wait_for_token, wait_run
from tests.servers.databases import create_pg_database, drop_pg_database
from tests.servers.sshd import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
DAG = "retire__demo"
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, installed by scripts/system-deps.sh test


@dataclass
class RunningAirflow:
    url: str
    token: str
    home: Path
    ledger_url: str
    tmp: Path

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def wait_run(self, run_id: str, timeout: float = 300, dag: str = DAG) -> str:
        return wait_run(self.api, dag, run_id, timeout)


APPROVAL_DAG = "retire__approval"


def _plans(tmp: Path) -> Path:
    """The demo plan, and a copy that waits for a person to approve the deletion."""
    import yaml

    folder = tmp / "plans"
    folder.mkdir()
    demo = (ROOT / "include" / "plans" / "demo.yaml").read_text()
    (folder / "demo.yaml").write_text(demo)
    plan = yaml.safe_load(demo)
    plan["name"] = "approval"
    plan["approval"] = {
        "approvers": [
            {"name": "Li Wei", "role": "DPO", "email": "dpo@demo-trading.example", "user": "admin"}
        ],
        "auto_approve": False,
    }
    for source, conn in (("crm", "approval_crm"), ("exports", "approval_exports")):
        next(s for s in plan["sources"] if s["name"] == source)["connection"] = conn
    (folder / "approval.yaml").write_text(yaml.safe_dump(plan, allow_unicode=True))
    return folder


def _env(tmp: Path) -> dict[str, str]:
    from retirement.demo import generate

    sources = tmp / "sources"
    generate(sources, customers=50)
    generate(tmp / "approval-sources", customers=40)
    master = KeyStore.new_master_key(tmp / "keys" / "master.key")
    home = tmp / "airflow"
    home.mkdir()
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "pw"}))
    conn = {
        "RETIREMENT_LEDGER": {
            "conn_type": "generic",
            "extra": {"url": f"sqlite:///{tmp / 'ledger.sqlite'}", "output_dir": str(tmp / "out")},
        },
        "RETIREMENT_KEYS": {
            "conn_type": "generic",
            "password": master,
            "extra": {"path": str(tmp / "keys")},
        },
        "DEMO_CRM": {"conn_type": "sqlite", "host": str(sources / "crm.sqlite")},
        "DEMO_EXPORTS": {"conn_type": "fs", "extra": {"path": str(sources / "exports")}},
        "APPROVAL_CRM": {"conn_type": "sqlite", "host": str(tmp / "approval-sources/crm.sqlite")},
        "APPROVAL_EXPORTS": {
            "conn_type": "fs",
            "extra": {"path": str(tmp / "approval-sources" / "exports")},
        },
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    port = free_port()
    env.update({f"AIRFLOW_CONN_{k}": json.dumps(v) for k, v in conn.items()})
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PYTHONPATH": str(ROOT / "include"),
            "RETIREMENT_PLANS_DIR": str(_plans(tmp)),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirflow]:
    tmp = tmp_path_factory.mktemp("e2e")
    env = _env(tmp)
    # Airflow's metadata in PostgreSQL, as in production: with SQLite, the retention_expiry
    # DAG's scheduled run (active on creation) held the database while the test triggered a
    # run, and the API answered 500 "Database error" after SQLite's 5 s busy timeout.
    metadata = create_pg_database("af_rest")
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata.replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    log = (tmp / "standalone.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    try:
        token = _wait_for_token(url, proc, tmp / "standalone.log")
        yield RunningAirflow(
            url, token, Path(env["AIRFLOW_HOME"]), f"sqlite:///{tmp / 'ledger.sqlite'}", tmp
        )
    finally:
        proc.send_signal(signal.SIGINT)  # standalone stops its children on SIGINT
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
        drop_pg_database(metadata)


def _wait_for_token(url: str, proc: subprocess.Popen, log: Path) -> str:
    def exited() -> str | None:
        if proc.poll() is None:
            return None
        return f"airflow standalone exited:\n{log.read_text()[-3000:]}"

    return wait_for_token(url, exited, lambda: log.read_text()[-3000:])


def test_requests_without_a_token_are_refused(airflow: RunningAirflow) -> None:
    assert httpx.get(f"{airflow.url}/api/v2/dags", timeout=10).status_code in (401, 403)


def test_trigger_watch_clear_and_rerun(airflow: RunningAirflow) -> None:
    deadline = time.monotonic() + 120
    while airflow.api("GET", f"/api/v2/dags/{DAG}").status_code != 200:
        assert time.monotonic() < deadline, "the DAG was never parsed"
        time.sleep(2)
    assert airflow.api("PATCH", f"/api/v2/dags/{DAG}", json={"is_paused": False}).status_code == 200
    run = airflow.api(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", json={"logical_date": None, "conf": {}}
    )
    assert run.status_code == 200, run.text
    run_id = run.json()["dag_run_id"]
    assert airflow.wait_run(run_id) == "success"

    tis = airflow.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances").json()
    mapped = [t for t in tis["task_instances"] if t["task_id"] == "backup"]
    assert len(mapped) == 11  # one backup per dataset of the demo
    ledger = Ledger.open(airflow.ledger_url, create=False)
    events_before = ledger.verify().events
    states = {s.dataset: s.state for s in ledger.dataset_states(f"{DAG}:{run_id}")}
    assert set(states.values()) == {"deleted"}
    assert len(ledger.artifacts(f"{DAG}:{run_id}", kind="certificate")) == len(states)

    sent = [t for t in tis["task_instances"] if t["task_id"] == "transfer"]
    assert len(sent) * 3 == len(ledger.artifacts(f"{DAG}:{run_id}", kind="receipt"))

    # An operator clears the backups, the transfers and their gates from the UI after the
    # deletion: the re-run reads no source, sends nothing again and changes no state.
    cleared = airflow.api(
        "POST",
        f"/api/v2/dags/{DAG}/clearTaskInstances",
        json={
            "dry_run": False,
            "task_ids": ["backup", "gate_backup", "transfer", "gate_transfer"],
            "dag_run_id": run_id,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    assert cleared.status_code == 200, cleared.text
    assert airflow.wait_run(run_id) == "success"
    report = ledger.verify()
    added = report.events - events_before
    new = [e.kind for e in ledger.events(run_id=f"{DAG}:{run_id}")][-added:]
    # Only the gates' new verdicts, their great-expectations results and Data Docs pages.
    assert new.count("gate_passed") == 2
    assert new.count("artifact_gate_result") == 2
    assert set(new) == {"gate_passed", "artifact_gate_result", "artifact_gate_docs"}
    after = {s.dataset: s.state for s in ledger.dataset_states(f"{DAG}:{run_id}")}
    assert after == states
    ledger.close()


def test_the_retirement_page_is_behind_airflow_authentication(airflow: RunningAirflow) -> None:
    for path in ("/retirement/", "/retirement/certificates/1", "/retirement/dossier/x/index.html"):
        assert httpx.get(f"{airflow.url}{path}", timeout=10).status_code == 401, path
        forged = httpx.get(f"{airflow.url}{path}", cookies={"_token": "forged"}, timeout=10)
        assert forged.status_code == 403, path
        bearer = httpx.get(
            f"{airflow.url}{path}", headers={"Authorization": "Bearer forged"}, timeout=10
        )
        assert bearer.status_code == 403, path
    page = airflow.api("GET", "/retirement/")
    assert page.status_code == 200, page.text
    assert "Signed in as admin" in page.text


def test_the_retirement_page_in_a_browser(airflow: RunningAirflow, tmp_path: Path) -> None:
    """Headless Chromium opens the UI with the session an operator has after logging in,
    follows the "Retirement" entry in the navigation and reads the page it frames."""
    from playwright.sync_api import expect, sync_playwright

    ledger = Ledger.open(airflow.ledger_url, create=False)
    run_id = next(r["run_id"] for r in ledger.recent_runs() if r["plan_name"] == "demo")
    states = ledger.dataset_states(run_id)
    ledger.close()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        context.add_cookies([{"name": "_token", "value": airflow.token, "url": airflow.url}])
        page = context.new_page()
        page.goto(f"{airflow.url}/")
        page.get_by_role("link", name="Retirement").first.click()
        # Airflow's UI mirrors the frame's location into its own once the frame has loaded
        # (/plugin/retirement + the frame's /retirement/), so either URL is the page
        expect(page).to_have_url(
            re.compile(re.escape(f"{airflow.url}/plugin/retirement") + r"(/retirement/)?$")
        )
        view = page.frame_locator("iframe").first
        # both languages by default (the plan names none), side by side
        expect(view.locator("h1")).to_have_text("数据退役 / Retirement", timeout=30_000)
        expect(view.locator("#plans")).to_contain_text("demo")
        run = view.locator("#runs tr", has_text=run_id)
        expect(run).to_contain_text("sealed")
        expect(run.get_by_role("link", name="dossier")).to_be_visible()
        for state in states:
            row = view.locator(f'tr[data-dataset="{state.dataset}"]').first
            expect(row).to_contain_text(state.data_class)
            cells = row.locator("td.stage")
            expect(cells).to_have_count(5)
            # inventoried, backed up, deleted and sealed; delivered unless nothing was sent
            for i in (0, 1, 3, 4):
                expect(cells.nth(i)).to_have_class("stage done")
        shot = tmp_path / "retirement-page.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("RETIREMENT_SCREENSHOT_DIR"):  # refresh the one kept in docs/
            shot_dir = Path(os.environ["RETIREMENT_SCREENSHOT_DIR"])
            (shot_dir / shot.name).write_bytes(shot.read_bytes())

        # A certificate and the dossier open from the page, in the same session.
        href = view.get_by_role("link", name="certificate").first.get_attribute("href")
        cert = context.request.get(f"{airflow.url}{href}")
        assert cert.status == 200
        assert "certificate" in cert.text().lower()
        href = run.get_by_role("link", name="dossier").get_attribute("href")
        dossier = context.request.get(f"{airflow.url}{href}")
        assert dossier.status == 200
        assert "Closure dossier" in dossier.text()
        outside = context.request.get(f"{airflow.url}/retirement/dossier/..%2F..%2Fkeys/master.key")
        assert outside.status == 404
        browser.close()


def _trigger(airflow: RunningAirflow, dag: str) -> str:
    deadline = time.monotonic() + 120
    while airflow.api("GET", f"/api/v2/dags/{dag}").status_code != 200:
        assert time.monotonic() < deadline, f"{dag} was never parsed"
        time.sleep(2)
    assert airflow.api("PATCH", f"/api/v2/dags/{dag}", json={"is_paused": False}).is_success
    run = airflow.api("POST", f"/api/v2/dags/{dag}/dagRuns", json={"logical_date": None})
    assert run.status_code == 200, run.text
    return run.json()["dag_run_id"]


def _await_approval(airflow: RunningAirflow, run_id: str) -> dict:
    return await_approval(airflow.api, APPROVAL_DAG, run_id)


def _answer(airflow: RunningAirflow, run_id: str, option: str) -> None:
    path = (
        f"/api/v2/dags/{APPROVAL_DAG}/dagRuns/{run_id}/taskInstances/approve_deletion/-1/"
        "hitlDetails"
    )
    answer = airflow.api("PATCH", path, json={"chosen_options": [option], "params_input": {}})
    assert answer.status_code == 200, answer.text
    again = airflow.api("PATCH", path, json={"chosen_options": [option], "params_input": {}})
    assert again.status_code == 409  # answered once, for good


def test_deletion_waits_for_a_person_reject_then_approve(airflow: RunningAirflow) -> None:
    import sqlite3

    crm = airflow.tmp / "approval-sources" / "crm.sqlite"

    def customers() -> int:
        with sqlite3.connect(crm) as db:
            return db.execute("SELECT count(*) FROM customers").fetchone()[0]

    ledger = Ledger.open(airflow.ledger_url, create=False)
    rejected = _trigger(airflow, APPROVAL_DAG)
    details = _await_approval(airflow, rejected)
    assert "Permanent deletion at the source" in details["body"]
    assert "| crm.customers | sensitive | 40 |" in details["body"]
    _answer(airflow, rejected, "Reject")
    assert airflow.wait_run(rejected, dag=APPROVAL_DAG) == "success"  # ends cleanly
    assert customers() == 40  # nothing deleted
    run = f"{APPROVAL_DAG}:{rejected}"
    (no,) = [e for e in ledger.events(run_id=run) if e.kind == "deletion_rejected"]
    assert no.payload["approved_by"] == "admin"
    assert not [e for e in ledger.events(run_id=run) if e.kind == "dataset_deleting"]

    approved = _trigger(airflow, APPROVAL_DAG)
    _await_approval(airflow, approved)
    _answer(airflow, approved, "Approve")
    assert airflow.wait_run(approved, dag=APPROVAL_DAG) == "success"
    assert customers() == 0
    run = f"{APPROVAL_DAG}:{approved}"
    (yes,) = [e for e in ledger.events(run_id=run) if e.kind == "deletion_approved"]
    assert yes.payload["approved_by"] == "admin"
    assert yes.payload["auto"] is False
    certificates = ledger.artifacts(run, kind="certificate")
    assert certificates
    cert = json.loads(Path(certificates[0]["location"]).read_text())
    assert cert["approval"]["approved_by"] == "admin"
    assert "admin" in cert["approval"]["approver"].values()  # user id and name as recorded
    from datetime import datetime

    for artifact in certificates:  # a person's approval: approved < performed < issued
        c = json.loads(Path(artifact["location"]).read_text())
        times = [c["approval"]["approved_at"], c["performed_at"], c["issued_at"]]
        approved_at, performed_at, issued_at = (datetime.fromisoformat(t) for t in times)
        assert approved_at < performed_at < issued_at, times
        assert c["performed_by"]["task"].endswith(".delete"), c["performed_by"]
    ledger.close()
