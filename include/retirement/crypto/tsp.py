"""RFC 3161 time-stamp tokens: the request made with ``openssl ts -query``, sent to a
time-stamping authority over HTTP(S) (``application/timestamp-query``, the server's TLS
certificate verified), and the reply read back: its status, the digest it time-stamps
(the message imprint) and the time the authority gives it. Verifying a token against the
authority's CA certificate is ``openssl ts -verify`` (verify_token), as docs/audit.md says.

A TSA connection (an Airflow ``http`` connection): ``host`` (a name, or a whole URL),
``schema`` http or https (default https), ``port``, and extras ``path`` (default ``/``),
``ca_bundle`` (the CA file that verifies the server; default: the system's) and ``timeout``
in seconds.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from retirement.errors import IntegrityError, TimestampError

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo

SHA256_OID = "2.16.840.1.101.3.4.2.1"


def tsa_url(conn: ConnectionInfo) -> str:
    """The URL a connection names (host may be a whole URL)."""
    host = (conn.host or "").rstrip("/")
    if "://" in host:
        return host
    if not host:
        raise TimestampError(f"time-stamping authority {conn.conn_id}: the connection has no host")
    scheme = (conn.schema or conn.conn_type or "https").lower()
    scheme = scheme if scheme in ("http", "https") else "https"
    port = f":{conn.port}" if conn.port else ""
    path = str(conn.extra.get("path") or "/")
    return f"{scheme}://{host}{port}{path if path.startswith('/') else '/' + path}"


def make_query(digest_hex: str) -> bytes:
    """An RFC 3161 request (DER) for a SHA-256 digest, with a nonce, asking for the
    authority's certificate in the reply (``openssl ts -query``)."""
    run = subprocess.run(
        ["openssl", "ts", "-query", "-digest", digest_hex, "-sha256", "-cert"],
        capture_output=True,
        check=False,
    )
    if run.returncode != 0 or not run.stdout:
        raise TimestampError(f"openssl ts -query failed: {run.stderr.decode(errors='replace')}")
    return run.stdout


def request_token(conn: ConnectionInfo, query: bytes) -> bytes:
    """POST ``query`` to the authority of ``conn``; its reply (DER). TimestampError names
    the connection when the authority cannot be reached or answers otherwise."""
    import ssl

    url = tsa_url(conn)
    context = ssl.create_default_context(cafile=conn.extra.get("ca_bundle") or None)
    request = urllib.request.Request(
        url, data=query, headers={"Content-Type": "application/timestamp-query"}, method="POST"
    )
    timeout = float(conn.extra.get("timeout", 30))
    where = f"time-stamping authority {conn.conn_id} ({url})"
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            kind = response.headers.get("Content-Type", "")
            body = bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TimestampError(f"{where} cannot be reached: {reason}") from exc
    if "timestamp-reply" not in kind:
        raise TimestampError(
            f"{where} answered {kind or 'no content type'}, not a time-stamp reply"
        )
    return body


@dataclass(frozen=True)
class Token:
    """What a time-stamp reply says: granted or not, the digest and the time."""

    status: int
    hash_oid: str
    imprint: str  # hex
    gen_time: str  # ISO 8601, UTC


def read_reply(reply: bytes, *, where: str = "time-stamp reply") -> Token:
    """A TimeStampResp's status, message imprint and time (IntegrityError: not one)."""
    try:
        resp = _children(_tlv(reply, 0)[1])
        status = _integer(_children(resp[0][1])[0][1])
        if len(resp) < 2:
            return Token(status, "", "", "")
        content = _children(resp[1][1])  # ContentInfo: type, [0] EXPLICIT SignedData
        signed = _children(_children(content[1][1])[0][1])
        encap = _children(signed[2][1])  # encapContentInfo: type, [0] EXPLICIT eContent
        octets = _children(encap[1][1])[0][1]  # [0] EXPLICIT OCTET STRING
        tst = _children(_tlv(octets, 0)[1])
        imprint = _children(tst[2][1])
        algorithm = _oid(_children(imprint[0][1])[0][1])
        when = tst[4][1].decode("ascii")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{where}: not an RFC 3161 time-stamp reply ({exc})") from exc
    return Token(status, algorithm, imprint[1][1].hex(), _generalized(when))


def verify_token(
    reply: Path, ca_file: Path, *, query: Path | None = None, digest: str | None = None
) -> str:
    """``openssl ts -verify`` of a reply against the authority's CA certificate, with the
    request (``-queryfile``: imprint and nonce) or the digest (``-digest``); the problem
    (empty: it verifies)."""
    args = ["-queryfile", str(query)] if query is not None else ["-digest", str(digest)]
    run = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(reply), *args, "-CAfile", str(ca_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode == 0 and "Verification: OK" in run.stdout:
        return ""
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else "openssl ts -verify failed"


def _tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
    """The DER element at ``at``: its tag, its content and where the next one starts."""
    tag, length, at = data[at], data[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("unsupported DER length")
        length, at = int.from_bytes(data[at : at + size], "big"), at + size
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[at : at + length], at + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        tag, content, at = _tlv(data, at)
        out.append((tag, content))
    return out


def _integer(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _oid(data: bytes) -> str:
    first, rest, value = data[0], [], 0
    for byte in data[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            rest.append(value)
            value = 0
    return ".".join(str(n) for n in (first // 40, first % 40, *rest))


def _generalized(text: str) -> str:
    """GeneralizedTime (``YYYYMMDDHHMMSS[.f]Z``) as ISO 8601 UTC."""
    main, _, fraction = text.rstrip("Z").partition(".")
    when = datetime.strptime(main, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return when.replace(microsecond=micro).isoformat()
