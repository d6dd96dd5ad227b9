"""Notices over SMTP against a local aiosmtpd server with a test CA: implicit TLS (465-style)
and STARTTLS both log in only over TLS; a connection that would send in the clear is refused
unless a test asks for it; every message carries Date and Message-ID."""

from __future__ import annotations

import email
import ssl
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from retirement.connect.info import ConnectionInfo
from retirement.connect.smtp import IMPLICIT, PLAINTEXT, STARTTLS, smtp_mode
from retirement.errors import InsecureConnection
from retirement.evidence.notices import Notice, send
from retirement.ledger.core import Ledger
from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca

SENDER = "Demo Trading <dpo@demo-trading.example>"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.logins: list[tuple[str, bool]] = []  # (login, over TLS)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
        from aiosmtpd.smtp import AuthResult

        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((auth.login.decode(), tls))
        return AuthResult(success=auth.password == b"s3cret")


@pytest.fixture
def server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ConnectionInfo, _Inbox]]:
    """A local SMTP server in the mode the test names (implicit, starttls, plaintext), and a
    connection to it."""
    from aiosmtpd.controller import Controller

    mode = request.param
    ca = make_test_ca(tmp_path / "ca", label="smtp")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    inbox, port = _Inbox(), free_port()
    options: dict[str, Any] = {"authenticator": inbox.authenticate, "auth_require_tls": True}
    if mode == "implicit":  # aiosmtpd only knows STARTTLS as TLS: the login records which
        options.update(ssl_context=context, auth_require_tls=False)
    elif mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, server_hostname="localhost", **options
    )
    controller.start()
    extra: dict[str, Any] = {"ca_bundle": str(ca.ca_cert_path)}
    extra |= {"implicit": {"disable_ssl": False}, "plaintext": {"disable_tls": True}}.get(mode, {})
    login = None if mode == "plaintext" else "notices"
    yield ConnectionInfo("smtp", "smtp", "localhost", login, "s3cret", port, None, extra), inbox
    controller.stop()


def _notices(n: int) -> list[Notice]:
    return [
        Notice(
            "hand_over",
            "crm.customers",
            f"c{i}@example.com",
            None,
            None,
            "通知 Notice",
            "中文",
            "English",
        )
        for i in range(n)
    ]


def _send(tmp_path: Path, conn: ConnectionInfo, **options: Any) -> int:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        return send(
            _notices(3),
            conn=conn,
            sender=SENDER,
            ledger=ledger,
            run_id="r",
            actor="t",
            pseudonym_key=b"k" * 32,
            **options,
        )
    finally:
        ledger.close()


@pytest.mark.parametrize("server", ["implicit", "starttls"], indirect=True)
def test_login_and_messages_only_over_tls_with_date_and_message_id(
    tmp_path: Path, server: tuple[ConnectionInfo, _Inbox]
) -> None:
    conn, inbox = server
    assert _send(tmp_path, conn) == 3
    assert inbox.logins == [("notices", True)]
    assert len(inbox.messages) == 3
    ids = {m["Message-ID"] for m in inbox.messages}
    assert len(ids) == 3
    assert all(i.endswith("@demo-trading.example>") for i in ids)
    assert all(parsedate_to_datetime(m["Date"]).tzinfo is not None for m in inbox.messages)


@pytest.mark.parametrize("server", ["starttls"], indirect=True)
def test_a_server_certificate_from_another_ca_is_refused(
    tmp_path: Path, server: tuple[ConnectionInfo, _Inbox]
) -> None:
    conn, inbox = server
    other = make_test_ca(tmp_path / "other", label="other")
    wrong = ConnectionInfo(
        conn.conn_id, "smtp", conn.host, conn.login, conn.password, conn.port, None,
        {"ca_bundle": str(other.ca_cert_path)},
    )  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        _send(tmp_path, wrong)
    assert inbox.logins == []
    assert inbox.messages == []


@pytest.mark.parametrize("server", ["plaintext"], indirect=True)
def test_plaintext_is_refused_unless_a_test_asks_for_it(
    tmp_path: Path, server: tuple[ConnectionInfo, _Inbox]
) -> None:
    conn, inbox = server
    with pytest.raises(InsecureConnection, match="in the clear"):
        _send(tmp_path, conn)
    assert inbox.messages == []
    assert _send(tmp_path, conn, plaintext_for_tests=True) == 3
    assert all(m["Date"] and m["Message-ID"] for m in inbox.messages)


@pytest.mark.parametrize(
    ("port", "extra", "mode"),
    [
        pytest.param(465, {}, IMPLICIT, id="port-465"),
        pytest.param(2465, {"disable_ssl": False}, IMPLICIT, id="disable_ssl-false"),
        pytest.param(587, {"ssl": "true"}, IMPLICIT, id="ssl-true"),
        pytest.param(587, {}, STARTTLS, id="default"),
        pytest.param(587, {"disable_ssl": True}, STARTTLS, id="disable_ssl"),
        pytest.param(25, {"disable_ssl": True, "disable_tls": True}, PLAINTEXT, id="disable_tls"),
        pytest.param(25, {"starttls": False}, PLAINTEXT, id="starttls-false"),
    ],
)
def test_the_mode_follows_the_connection(port: int, extra: dict[str, Any], mode: str) -> None:
    assert smtp_mode(ConnectionInfo("s", "smtp", "h", None, None, port, None, extra)) == mode
