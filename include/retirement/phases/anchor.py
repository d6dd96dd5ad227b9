"""The external time anchor (RFC 3161): when the plan names a time-stamping authority
(``evidence.timestamp_authority``), each gate time-stamps the chain head, and the seal the
dossier's chain head and its SHA256SUMS. The request and reply (``.tsq``/``.tsr``) are kept
as evidence and go into the dossier (``timestamps/``); each is recorded in the chain as a
``timestamp_anchored`` event with the digest it time-stamps and the digests of its files,
so a chain rewritten afterwards no longer matches tokens the operator cannot make again
for the time they show (docs/audit.md)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from retirement.crypto.tsp import SHA256_OID, make_query, read_reply, request_token
from retirement.errors import IntegrityError, TimestampError

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo
    from retirement.phases.context import RunContext

GRANTED = (0, 1)  # PKIStatus granted, grantedWithMods


def time_stamp(conn: ConnectionInfo, digest: str, folder: Path, name: str) -> dict[str, Any]:
    """Time-stamp ``digest`` (hex SHA-256) by the authority of ``conn``; write
    ``folder/name.tsq`` and ``.tsr``; what the ledger records of it. TimestampError names
    the connection when it cannot be done."""
    query = make_query(digest)
    reply = request_token(conn, query)
    where = f"time-stamping authority {conn.conn_id}"
    try:
        token = read_reply(reply, where=where)
    except IntegrityError as exc:
        raise TimestampError(str(exc)) from exc
    if token.status not in GRANTED:
        raise TimestampError(f"{where} refused to time-stamp (PKIStatus {token.status})")
    if (token.hash_oid, token.imprint) != (SHA256_OID, digest):
        raise TimestampError(f"{where} time-stamped another digest ({token.imprint[:16]}…)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.tsq").write_bytes(query)
    (folder / f"{name}.tsr").write_bytes(reply)
    return {
        "authority": conn.conn_id,
        "digest": digest,
        "token": f"{name}.tsr",
        "query": f"{name}.tsq",
        "tsr_sha256": hashlib.sha256(reply).hexdigest(),
        "tsq_sha256": hashlib.sha256(query).hexdigest(),
        "gen_time": token.gen_time,
    }


def authority(ctx: RunContext) -> ConnectionInfo | None:
    """The plan's time-stamping authority, or None when it names none."""
    conn_id = ctx.plan.evidence.timestamp_authority
    if conn_id is None:
        return None
    return ctx.connectors.connection(conn_id, "time-stamping authority (RFC 3161)")


def anchor_gate(ctx: RunContext, gate: str) -> dict[str, Any] | None:
    """Time-stamp the chain head as it is after ``gate``, and record the token in the chain
    (None: the plan names no authority)."""
    conn = authority(ctx)
    if conn is None:
        return None
    ctx.ledger.flush()
    seq, head = ctx.ledger.head_link()
    folder = ctx.layout.evidence(ctx.run_id) / "timestamps"
    record = time_stamp(conn, head, folder, f"{gate}.{seq}")
    payload = {"at": gate, "subject": "chain_head", "seq": seq, **record}
    payload["location"] = str(folder)
    ctx.ledger.append("timestamp_anchored", actor=ctx.actor, run_id=ctx.run_id, payload=payload)
    return payload
