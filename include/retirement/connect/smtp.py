"""SMTP for customer notices: implicit TLS (port 465) or STARTTLS, never a login or a
message in the clear outside tests; every message stamped with Date and Message-ID.

The connection's extras, as Airflow's smtp provider names them where it has a name:
``disable_ssl: false`` (or ``ssl: true``, or port 465) for implicit TLS; otherwise STARTTLS,
which ``disable_tls: true`` (or the older ``starttls: false``) would switch off: plaintext,
refused unless the caller passes ``plaintext_for_tests`` (no connection can). ``ca_bundle``
names the CA file that verifies the server (default: the system's); ``timeout`` in seconds.
"""

from __future__ import annotations

import smtplib
import ssl
from contextlib import contextmanager
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from retirement.errors import InsecureConnection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage

    from retirement.connect.info import ConnectionInfo

IMPLICIT, STARTTLS, PLAINTEXT = "implicit TLS", "STARTTLS", "plaintext"


def _flag(value: object) -> bool | None:
    if value is None:
        return None
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def smtp_mode(conn: ConnectionInfo) -> str:
    """How ``conn`` protects the session: implicit TLS, STARTTLS or plaintext."""
    extra = conn.extra
    if _flag(extra.get("disable_ssl")) is False or _flag(extra.get("ssl")) or conn.port == 465:
        return IMPLICIT
    if _flag(extra.get("disable_tls")) or _flag(extra.get("starttls")) is False:
        return PLAINTEXT
    return STARTTLS


@contextmanager
def smtp_session(
    conn: ConnectionInfo, *, plaintext_for_tests: bool = False
) -> Iterator[smtplib.SMTP]:
    """A logged-in SMTP session over TLS (the server's certificate verified)."""
    mode = smtp_mode(conn)
    if mode == PLAINTEXT and not plaintext_for_tests:
        raise InsecureConnection(
            f"connection {conn.conn_id}: SMTP without TLS would send the login and the notices "
            "in the clear; remove disable_tls/starttls: false (STARTTLS), or use port 465 "
            "(implicit TLS)"
        )
    context = ssl.create_default_context(cafile=conn.extra.get("ca_bundle") or None)
    host, timeout = conn.host or "localhost", float(conn.extra.get("timeout", 30))
    smtp: smtplib.SMTP
    if mode == IMPLICIT:
        smtp = smtplib.SMTP_SSL(host, int(conn.port or 465), timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, int(conn.port or 587), timeout=timeout)
    with smtp:
        if mode == STARTTLS:
            smtp.starttls(context=context)
        if conn.login:
            smtp.login(conn.login, conn.password or "")
        yield smtp


def stamp(message: EmailMessage, sender: str) -> EmailMessage:
    """Date and Message-ID, which some servers add and some spam filters require."""
    domain = sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else None
    if "Date" not in message:
        message["Date"] = formatdate(usegmt=True)
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=domain or None)
    return message
