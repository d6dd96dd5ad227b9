"""Customer notices against a real ledger, the demo CRM and a local SMTP server (aiosmtpd)
that requires STARTTLS with a certificate from a test CA."""

from __future__ import annotations

import email
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from retirement.connect.info import ConnectionInfo
from retirement.evidence.notices import mask, notify_customers
from retirement.plan.model import NoticeSettings, load_plan
from retirement.sources.sql import SqlSource
from tests.servers.sshd import free_port
from tests.servers.tls import make_test_ca
from tests.support.demo import PLAN, DemoRun


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[ConnectionInfo, _Inbox]]:
    from aiosmtpd.controller import Controller

    ca = make_test_ca(tmp_path / "smtp-ca", label="smtp")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    inbox, port = _Inbox(), free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    conn = ConnectionInfo(
        "demo_smtp",
        "smtp",
        "127.0.0.1",
        None,
        None,
        port,
        None,
        {"ca_bundle": str(ca.ca_cert_path)},
    )
    yield conn, inbox
    controller.stop()


def _notify(demo: DemoRun, conn: ConnectionInfo | None) -> dict:
    plan = load_plan(PLAN).model_copy(
        update={
            "notices": NoticeSettings(
                sender="dpo@demo-trading.example", smtp_connection="demo_smtp"
            )
        }
    )
    return notify_customers(
        plan,
        ledger=demo.ledger,
        run_id="r",
        actor="t",
        keys=demo.keys,
        source_for=lambda _name: SqlSource("crm", f"sqlite:///{demo.db}"),
        smtp=conn,
        output_dir=demo.tmp / "out",
        date="2026-11-23",
    )


def test_one_notice_per_customer_sent_over_starttls_and_recorded(
    demo: DemoRun, smtp: tuple[ConnectionInfo, _Inbox]
) -> None:
    import sqlite3

    conn, inbox = smtp
    ledger, keys, db, tmp_path = demo.ledger, demo.keys, demo.db, demo.tmp
    with sqlite3.connect(db) as c:
        customers = c.execute("SELECT email, id_card FROM customers").fetchall()
    summary = _notify(demo, conn)
    assert summary["notices"] == summary["sent"] == len({e for e, _ in customers})
    assert len(inbox.messages) == summary["sent"]
    first = inbox.messages[0]
    body = first.get_payload(decode=True).decode()
    assert "继任服务有限公司 Successor Services Co., Ltd." in body
    assert "handover@successor.example" in body
    assert "个人信息保护法" in body
    assert "Article 22" in body
    # the kinds of information in plain words, from the detected identifiers
    assert "个人信息（姓名、身份证号、银行卡号、手机号码、电子邮箱、地址）" in body
    held = "(name, ID number, bank card number, mobile phone number, e-mail address, address)"
    assert held in body
    assert "crm." not in body
    assert "sensitive" not in body
    assert not any(card in body for _, card in customers)  # never an identifier in full
    assert any(mask(card) in body for _, card in customers)
    events = [e for e in ledger.events(run_id="r") if e.kind == "notice_sent"]
    assert len(events) == summary["sent"]
    assert "***@" in events[0].payload["to"]
    assert not any(e.payload["to"] == addr for e in events for addr, _ in customers)
    # Each address is kept as HMAC-SHA256 under the plan's key, not as a plain SHA-256
    # that hashing a list of addresses would reverse; nothing in the run holds one.
    import hashlib
    import hmac
    import json

    key = keys.pseudonym_key("demo")
    addresses = {a.strip().lower() for a, _ in customers}
    assert {e.payload["to_hmac"] for e in events} == {
        hmac.new(key, a.encode(), hashlib.sha256).hexdigest() for a in addresses
    }
    chain = json.dumps([e.payload for e in ledger.events(run_id="r")])
    assert not [a for a in addresses if hashlib.sha256(a.encode()).hexdigest() in chain]
    assert not [a for a in addresses if a in chain]

    again = _notify(demo, conn)  # a re-run sends nothing twice
    assert again["sent"] == 0
    assert len(inbox.messages) == summary["sent"]

    (csv_age,) = [Path(p) for p in summary["files"]]
    identity = tmp_path / "hand_over.key"
    identity.write_text(f"{keys.identity('demo', 'hand_over')}\n")
    plain = subprocess.run(
        ["age", "-d", "-i", str(identity), str(csv_age)], capture_output=True, check=True
    ).stdout.decode()
    assert plain.startswith("email,name,masked_id,subject,body_zh,body_en")
    assert customers[0][0] in plain


def test_without_smtp_only_the_encrypted_csv_is_written(demo: DemoRun) -> None:
    summary = _notify(demo, None)
    assert summary["sent"] == 0
    assert summary["notices"] > 0
    assert Path(summary["files"][0]).read_bytes().startswith(b"age-encryption.org/v1")


def test_notices_name_the_kinds_of_information_in_plain_words() -> None:
    from retirement.evidence.notices import kinds_of

    detected = ["bank_card", None, "person_name", "cn_resident_id", "bank_card"]
    assert kinds_of(detected) == ("姓名、身份证号、银行卡号", "name, ID number, bank card number")
    assert kinds_of(["employee_no"]) == ("其他个人信息", "other personal information")
    assert kinds_of([None]) == ("您的客户资料", "your customer records")
