"""Notifications through Airflow's SmtpNotifier, received by a local SMTP server (aiosmtpd,
STARTTLS with a test CA), and its HttpNotifier, received by a local webhook: the run sealed
(dossier and key fingerprint); an approval waiting (with the link to answer it); an approval
not answered in time, which fails the run with nothing deleted, the timeout in the ledger and
a failure notice."""

from __future__ import annotations

import email
import json
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from retirement.ledger.core import Ledger
from tests.dags.conftest import demo_plan_as, ledger_conn, load_dagbag, task_states
from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def body(self, subject_part: str) -> str:
        (found,) = [m for m in self.messages if subject_part in str(m["Subject"])]
        parts = [p for p in found.walk() if p.get_content_type() == "text/html"]
        return "".join(str(p.get_payload(decode=True), "utf-8") for p in parts)


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """An SMTP server that requires STARTTLS; its Airflow connection ``smtp_ops``."""
    from aiosmtpd.controller import Controller

    ca = make_test_ca(tmp_path / "smtp-ca", label="smtp")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    box, port = Inbox(), free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_cert_path))  # the client trusts the test CA
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_ssl": True, "disable_tls": False, "from_email": "af@example.com"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_OPS", json.dumps(conn))
    yield box
    controller.stop()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    """A local HTTP server taking JSON POSTs; its Airflow connection ``hooks_ops``."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": server.server_port}
    monkeypatch.setenv("AIRFLOW_CONN_HOOKS_OPS", json.dumps({**conn, "schema": "http"}))
    yield received
    server.shutdown()


def _plans(
    tmp_path: Path, approval: dict, monkeypatch: pytest.MonkeyPatch, **notify: object
) -> Path:
    notified = {"connection": "smtp_ops", "to": ["ops@example.com"], **notify}
    return demo_plan_as(tmp_path, monkeypatch, "notified", approval=approval, notify=notified)


def test_a_sealed_run_is_announced_with_its_dossier_and_key(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    inbox: Inbox,
    webhook: list[dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger_conn(monkeypatch, f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path / "out")
    plans = _plans(tmp_path, {"auto_approve": True}, monkeypatch, webhook="hooks_ops")
    dag = load_dagbag(plans).dags["retire__notified"]
    dagrun = dag.test()
    assert dagrun.state == "success", task_states(dagrun)
    assert inbox.subjects() == ["[retirement] retire__notified: run sealed"]
    body = inbox.body("run sealed")
    (dossier,) = (tmp_path / "out" / "dossier").iterdir()
    assert str(dossier) in body
    from retirement.phases.seal import signing_key_sha256

    pem = (tmp_path / "keys" / "signing.pub.pem").read_bytes()
    assert signing_key_sha256(pem) in body
    (posted,) = webhook  # the same news as JSON, {"text": ...} as Slack's webhooks take it
    assert posted["event"] == "sealed"
    assert str(dossier) in posted["text"]
    assert signing_key_sha256(pem) in posted["text"]


def _time_out_the_approval(dag_id: str, inbox: Inbox, stop: threading.Event) -> None:
    """Once the approval waits and its notice arrived, the scheduler's timeout sweep's event:
    no response within approval.timeout (dag.test() never sweeps by itself)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    while not stop.is_set():
        if any("approval waits" in s for s in inbox.subjects()):
            with create_session() as session:
                ti = session.scalar(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == dag_id,
                        TaskInstance.task_id == "approve_deletion",
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    )
                )
                if ti is not None:
                    event = {"error": "no response", "error_type": "timeout"}
                    handle_event_submit(TriggerEvent(event), task_instance=ti, session=session)
                    return
        time.sleep(0.5)


def test_a_waiting_approval_and_its_timeout_are_announced_and_delete_nothing(
    airflow_db: Path,
    tmp_path: Path,
    demo_sources: Path,
    inbox: Inbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger_conn(monkeypatch, url, tmp_path / "out")
    approval = {
        "approvers": [{"name": "Alice", "role": "DPO", "user": "alice"}],
        "timeout": "2h",
    }
    dag = load_dagbag(_plans(tmp_path, approval, monkeypatch)).dags["retire__notified"]
    stop = threading.Event()
    responder = threading.Thread(target=_time_out_the_approval, args=(dag.dag_id, inbox, stop))
    responder.start()
    try:
        dagrun = dag.test()
    finally:
        stop.set()
        responder.join()
    states = task_states(dagrun)
    assert dagrun.state == "failed", states
    assert states["approve_deletion"] == "failed"
    assert states["delete"] == "upstream_failed"

    waiting = inbox.body("approval waits")
    assert "Alice (user alice)" in waiting
    assert "/tasks/approve_deletion/required_actions" in waiting
    assert "approval 1 of 1" in waiting.lower()
    failed = inbox.body("approve_deletion failed")
    assert "was not answered within 2:00:00" in failed

    ledger = Ledger.open(url, create=False)
    run_id = f"retire__notified:{dagrun.run_id}"
    (timed_out,) = ledger.events_of(run_id, ("approval_timed_out",))
    assert timed_out.payload["step"] == 1
    assert not ledger.events_of(run_id, ("dataset_deleting", "deletion_approved"))
    assert ledger.run_state(run_id).value == "failed"
    ledger.close()
    with sqlite3.connect(demo_sources / "crm.sqlite") as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == 60


def test_an_approval_notice_that_cannot_be_sent_leaves_the_approval_waiting(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The plan names an smtp connection that does not exist: Airflow's notifier raises (the
    approval task would fail and end the run); the approval's own logs it and goes on."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from retirement_airflow.approval import Announcement

    def notifier() -> SmtpNotifier:
        return SmtpNotifier(
            to=["ops@example.com"],
            from_email="retirement@example.com",
            subject="approval waits",
            html_content="approval waits",
            smtp_conn_id="smtp_nowhere",
        )

    with pytest.raises(Exception, match="(?i)smtp|smtp_nowhere"):
        notifier()({})
    Announcement(notifier())({})  # returns: the approval task goes on to wait
    logged = capfd.readouterr()
    assert "its notification could not be sent" in logged.out + logged.err
