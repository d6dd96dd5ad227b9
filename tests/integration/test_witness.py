"""Witnesses of a sealed dossier: the seal sends the signed head to an auditor by e-mail
(a local SMTP server over STARTTLS with a test CA) and to the recipient's SFTP folder (the
real test sshd), and records each sending in the ledger without the address in plain."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import ssl
from typing import TYPE_CHECKING, Any

from retirement.connect.info import ConnectionInfo
from retirement.crypto.keys import load_public_key
from retirement.phases.seal import seal
from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca
from tests.support.anchored import demo_plan_with
from tests.support.demo import demo_run

if TYPE_CHECKING:
    from pathlib import Path

    from tests.servers.sshd import SshServer

AUDITOR = "Auditor@Audit-Firm.example"
EVIDENCE = f"""\
evidence:
  smtp_connection: witness_smtp
  witnesses:
    auditor: {{name: Zhang Min, role: auditor, email: {AUDITOR}}}
    successor:
      {{name: Successor records office, role: recipient, sftp_connection: witness_sftp,
       path: witness}}
"""


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=auth.password == b"s3cret")


def test_the_seal_sends_the_signed_head_to_each_witness_and_records_it(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    from aiosmtpd.controller import Controller

    ca = make_test_ca(tmp_path / "ca", label="smtp")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    inbox, port = _Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        authenticator=inbox.authenticate,
        auth_require_tls=True,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    smtp = ConnectionInfo(
        "witness_smtp", "smtp", "localhost", "dossier", "s3cret", port, None,
        {"ca_bundle": str(ca.ca_cert_path)},
    )  # fmt: skip
    sftp = ConnectionInfo(
        "witness_sftp", "sftp", sshd_server.host, sshd_server.user, None, sshd_server.port,
        None, sshd_server.connection_extra(),
    )  # fmt: skip
    plan = demo_plan_with(tmp_path / "plan", EVIDENCE)
    demo = demo_run(tmp_path, plan=plan, connections={"witness_smtp": smtp, "witness_sftp": sftp})
    demo.approved()
    try:
        root = seal(demo.ctx()).parent
    finally:
        controller.stop()
    head = (root / "head.json").read_bytes()
    public = load_public_key((root / "signing.pub.pem").read_bytes())
    public.verify((root / "head.json.sig").read_bytes(), head)

    [message] = inbox.messages
    assert message["To"] == AUDITOR
    attached = {p.get_filename(): p.get_payload(decode=True) for p in message.walk()}
    assert attached["head.json"] == head
    assert attached["SHA256SUMS"] == (root / "SHA256SUMS").read_bytes()
    copy = sshd_server.upload_dir / "witness" / root.name
    assert (copy / "head.json").read_bytes() == head
    assert (copy / "head.json.sig").read_bytes() == (root / "head.json.sig").read_bytes()
    assert (copy / "SHA256SUMS.sig").read_bytes() == (root / "SHA256SUMS.sig").read_bytes()

    sent = {e.payload["witness"]: e.payload for e in demo.ledger.events_of("r", ("witness_sent",))}
    assert set(sent) == {"auditor", "successor"}
    digest = hashlib.sha256(head).hexdigest()
    assert all(p["head_sha256"] == digest and p["dossier"] == root.name for p in sent.values())
    key = demo.keys.pseudonym_key("demo")
    assert (
        sent["auditor"]["to_hmac"]
        == hmac.new(key, AUDITOR.lower().encode(), hashlib.sha256).hexdigest()
    )
    assert sent["auditor"]["channel"] == "email"
    assert sent["successor"] == sent["successor"] | {
        "channel": "sftp",
        "path": f"witness/{root.name}/",
    }
    recorded = json.dumps([e.payload for e in demo.ledger.events(run_id="r")]).lower()
    assert "audit-firm" not in recorded
    assert "zhang" not in recorded
