"""docs/your-first-plan.md followed step by step, natively, on a generated PostgreSQL database.

The guide's fenced blocks of its native part run in order in one bash session (variables and
functions carry over as in the reader's terminal), from the project folder, with ``HOME`` a
fresh folder. The only changes are the ones the guide asks the reader to make or that a
shared machine needs, all listed in :func:`_as_here`: the source connection names this
test's database; Airflow's port and its log servers' ports are free ones instead of 8080,
8793 and 8794; ``make install`` is not run again (the test runs in the installed project);
the plan block is written over the copied template ("shape it"); ``<run>`` is the run's
dossier folder. ``airflow standalone`` runs in the background, as in a second terminal; the
test waits where the guide says to wait (the DAG appears, an approval waits, the run ends).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import ROOT, wait_for_token, wait_run
from tests.servers.databases import PG_HOST, PG_PORT, PG_USER, create_pg_database, drop_pg_database
from tests.servers.sshd import free_port
from tests.support.markdown import fenced_blocks
from tests.support.pg_demo import load_crm, pg_counts

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

GUIDE = ROOT / "docs" / "your-first-plan.md"
DAG = "retire__acme"


class Shell:
    """One bash session, as the reader's terminal; a failing command ends it (``set -e``)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.run("set -e")

    def run(self, script: str) -> str:
        """Run ``script``; what it printed."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        marker = f"--- {uuid.uuid4().hex} done"
        self.proc.stdin.write(f"{script}\necho\necho '{marker}'\n")
        self.proc.stdin.flush()
        lines = []
        for line in self.proc.stdout:
            if line.rstrip("\n") == marker:
                return "".join(lines)
            lines.append(line)
        raise AssertionError(f"the guide's step failed:\n{script}\nprinted:\n{''.join(lines)}")

    def value(self, expression: str) -> str:
        return self.run(f'printf "%s\\n" "{expression}"').strip()

    def env(self) -> dict[str, str]:
        """The session's exported environment (what a command started from it gets)."""
        printed = self.run("env -0 | base64 -w0")
        pairs = base64.b64decode(printed.strip()).decode().split("\0")
        return dict(p.split("=", 1) for p in pairs if "=" in p)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


@dataclass(frozen=True)
class Here:
    """What is this machine's: the test's database and Airflow's port."""

    database: str
    port: int


def _native_blocks() -> list[tuple[str, str]]:
    """The guide's blocks up to its docker compose part."""
    native = GUIDE.read_text().split("\n## With docker compose", 1)[0]
    return fenced_blocks(native)


def _as_here(block: str, here: Here) -> str:
    """A block as the reader of this machine runs it (see the module's docstring)."""
    lines = [line for line in block.splitlines() if not line.startswith("make install")]
    text = "\n".join(lines)
    for old, new in {
        '"host": "db.example.internal"': f'"host": "{PG_HOST}"',
        '"port": 5432': f'"port": {PG_PORT}',
        '"login": "retirement"': f'"login": "{PG_USER}"',
        '"schema": "acme"': f'"schema": "{here.database}"',
        "localhost:8080": f"localhost:{here.port}",
    }.items():
        text = text.replace(old, new)
    return text


def _machine_ports(here: Here) -> str:
    """Ports a shared machine cannot give every Airflow its default of."""
    return (
        f"export AIRFLOW__API__PORT={here.port}\n"
        f"export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT={free_port()}\n"
        f"export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT={free_port()}"
    )


@dataclass
class Standalone:
    """``airflow standalone`` started from the session's environment, as in a second terminal."""

    proc: subprocess.Popen
    log: Path
    url: str
    home: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def token(self) -> str:
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 240
        while not passwords.exists():
            assert self.proc.poll() is None, "airflow standalone exited:\n" + self.tail()
            assert time.monotonic() < deadline, "no generated passwords:\n" + self.tail()
            time.sleep(2)
        password = json.loads(passwords.read_text())["admin"]

        def exited() -> str | None:
            return None if self.proc.poll() is None else "standalone exited:\n" + self.tail()

        return wait_for_token(self.url, exited, self.tail, 300, ("admin", password))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _start(shell: Shell, block: str, here: Here, tmp: Path) -> Standalone:
    shell.run(_machine_ports(here))
    env = shell.env()
    log = tmp / "standalone.log"
    proc = subprocess.Popen(
        ["bash", "-c", block],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Standalone(proc, log, f"http://127.0.0.1:{here.port}", Path(env["AIRFLOW_HOME"]))


def _api(airflow: Standalone, token: str) -> Callable[..., httpx.Response]:
    def call(method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{airflow.url}{path}", headers=headers, timeout=30, **kwargs)

    return call


def _dag_appears(api: Callable[..., httpx.Response], airflow: Standalone) -> None:
    deadline = time.monotonic() + 300
    while api("GET", f"/api/v2/dags/{DAG}").status_code != 200:
        assert time.monotonic() < deadline, f"{DAG} never appeared:\n{airflow.tail()}"
        time.sleep(3)


def _waits(api: Callable[..., httpx.Response], run_id: str, task: str) -> dict:
    """The task's hitlDetails once it waits for a person (as the reader waits for it)."""
    path = f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task}"
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        ti = api("GET", path).json()
        if ti.get("state") == "awaiting_input":
            time.sleep(6)  # an answer within a second of parking races the scheduler (3.3.2)
            return dict(api("GET", f"{path}/-1/hitlDetails").json())
        assert ti.get("state") not in ("failed", "upstream_failed"), ti
        time.sleep(3)
    raise AssertionError(f"{task} never waited for input")


@pytest.fixture
def acme_database(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database with the demo company's customers in schema public."""
    from retirement.demo import generate

    url = create_pg_database("acme")
    try:
        generate(tmp_path / "generated", customers=20)
        load_crm(tmp_path / "generated" / "crm.sqlite", url)
        yield url
    finally:
        drop_pg_database(url)


@dataclass
class Reader:
    """Someone following the guide in their terminal (and a second one for Airflow)."""

    shell: Shell
    here: Here
    home: Path
    logs: Path
    airflow: Standalone | None = None
    api: Callable[..., httpx.Response] | None = None
    printed: dict[str, str] = field(default_factory=dict)

    def follow(self, language: str, block: str) -> None:
        if language == "yaml":  # the plan, shaped: written over the copied template
            Path(self.shell.value("$RETIREMENT_PLANS_DIR"), "acme.yaml").write_text(block)
        elif block.strip() == "airflow standalone":
            self.airflow = _start(self.shell, block, self.here, self.logs)
            self.api = _api(self.airflow, self.airflow.token())
            _dag_appears(self.api, self.airflow)  # "DAG retire__acme appears"
        elif "answer()" in block:
            self.printed[block] = self._approve(_as_here(block, self.here))
        else:
            script = _as_here(block, self.here)
            if "<run>" in script:  # "when the run ends in success"
                script = script.replace("<run>", self._finished_run())
            self.printed[script] = self.shell.run(script)

    def _approve(self, block: str) -> str:
        """The approval block: its function defined, then each ``answer`` when its task
        waits; the first approval's text shows the totals the guide's preview reported."""
        from retirement.evidence.preview import totals_markdown
        from retirement.model.ids import shown

        assert self.api is not None, "the guide approves before Airflow runs"
        lines = block.splitlines()
        calls = [line for line in lines if line.startswith("answer ")]
        self.shell.run("\n".join(line for line in lines if line not in calls))
        run_id = self.shell.value("$RUN")
        (report,) = (self.home / "retirement-data" / "out" / "preview").glob("*/preview.json")
        previewed = json.loads(report.read_text())["totals"]
        out = ""
        for n, call in enumerate(calls):
            details = _waits(self.api, run_id, call.split()[2])
            if n == 0:
                assert totals_markdown(previewed, shown) in details["body"], details["body"]
            answered = self.shell.run(call)
            assert re.search(r'"chosen_options":\s*\["Approve"\]', answered), answered
            out += answered
        return out

    def _finished_run(self) -> str:
        """The run's dossier folder, once the run ended in success."""
        assert self.api is not None, "the guide verifies before Airflow runs"
        run_id = self.shell.value("$RUN")
        state = wait_run(self.api, DAG, run_id, timeout=420)
        assert state == "success", self.airflow.tail() if self.airflow else state
        (dossier,) = (self.home / "retirement-data" / "out" / "dossier").iterdir()
        return dossier.name

    def stop(self) -> None:
        if self.airflow is not None:
            self.airflow.stop()
        self.shell.close()


def test_the_guide_takes_a_database_to_a_sealed_dossier(acme_database: str, tmp_path: Path) -> None:
    tables = _tables(acme_database)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETIREMENT_"))}
    here = Here(database=acme_database.rsplit("/", 1)[1], port=free_port())
    reader = Reader(Shell({**env, "HOME": str(home)}), here, home, tmp_path)
    try:
        for language, block in _native_blocks():
            reader.follow(language, block)
    finally:
        reader.stop()
    verified = [out for command, out in reader.printed.items() if "retirement audit" in command]
    assert verified, "the guide never audits the dossier"
    assert "✗" not in verified[0]
    assert "✓" in verified[0]
    assert set(pg_counts(acme_database, tables).values()) == {0}  # retired at the source


def _tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as pg:
        rows = pg.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return [r[0] for r in rows]
