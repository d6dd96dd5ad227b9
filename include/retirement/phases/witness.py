"""Witnesses of a sealed dossier: the seal sends its signed head (head.json, head.json.sig,
SHA256SUMS, SHA256SUMS.sig and, with a time-stamping authority, SHA256SUMS.tsr) to each
witness the plan names (``evidence.witnesses``), by e-mail or into an SFTP folder, and
records each sending as a ``witness_sent`` event: the witness's name in the plan, the
channel, the connection, the head's digests, and an e-mail address only as HMAC-SHA256
under the plan's pseudonym key. A dossier rewritten afterwards no longer matches the copies
the witnesses hold, which the operator cannot change."""

from __future__ import annotations

import hashlib
import hmac
import json
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.errors import TransferError

if TYPE_CHECKING:
    from retirement.phases.context import RunContext
    from retirement.plan.model import Witness

SENT = ("head.json", "head.json.sig", "SHA256SUMS", "SHA256SUMS.sig", "SHA256SUMS.tsr")


def head_files(root: Path) -> dict[str, bytes]:
    """What a witness receives of the dossier at ``root``."""
    return {name: (root / name).read_bytes() for name in SENT if (root / name).is_file()}


def send_witnesses(ctx: RunContext, root: Path) -> list[dict[str, Any]]:
    """Send the signed head of the dossier at ``root`` to every witness of the plan; what
    was recorded of each."""
    plan = ctx.plan
    files = head_files(root)
    head = json.loads(files["head.json"])
    digests = {
        "dossier": root.name,
        "head_sha256": hashlib.sha256(files["head.json"]).hexdigest(),
        "chain_head": head.get("chain_head"),
        "sha256sums": hashlib.sha256(files["SHA256SUMS"]).hexdigest(),
    }
    done = []
    for name, witness in sorted(plan.evidence.witnesses.items()):
        if witness.email:
            where = _mail(ctx, name, witness, files, root.name)
        else:
            where = _upload(ctx, name, witness, files, root.name)
        payload = {"witness": name, "role": witness.role, **where, **digests}
        ctx.ledger.append("witness_sent", actor=ctx.actor, run_id=ctx.run_id, payload=payload)
        done.append(payload)
    return done


def _mail(
    ctx: RunContext, name: str, witness: Witness, files: dict[str, bytes], dossier: str
) -> dict[str, str]:
    from retirement.connect.smtp import smtp_session, stamp

    plan, conn_id = ctx.plan, ctx.plan.witness_smtp
    if conn_id is None or witness.email is None:  # plan_check refuses such a plan
        raise TransferError(f"witness {name}: an e-mail witness needs an address and SMTP")
    conn = ctx.connectors.connection(conn_id, "dossier witnesses (smtp)")
    sender = plan.notices.sender if plan.notices else (plan.organization.contact.email or "")
    message = EmailMessage()
    message["From"], message["To"] = sender, witness.email
    message["Subject"] = f"Sealed retirement dossier {dossier} of {plan.organization.name}"
    message.set_content(_letter(plan.organization.name, dossier, files))
    for name, data in files.items():
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    try:
        with smtp_session(conn) as smtp:
            smtp.send_message(stamp(message, sender))
    except OSError as exc:  # smtplib's errors are OSErrors
        raise TransferError(f"witness {name}: SMTP connection {conn_id}: {exc}") from exc
    key = ctx.key_store.pseudonym_key(plan.name)
    address = witness.email.strip().lower().encode()
    to_hmac = hmac.new(key, address, hashlib.sha256).hexdigest()
    return {"channel": "email", "connection": conn_id, "to_hmac": to_hmac}


def _upload(
    ctx: RunContext, name: str, witness: Witness, files: dict[str, bytes], dossier: str
) -> dict[str, str]:
    from retirement.destinations.base import Delivery
    from retirement.destinations.sftp import SftpDestination

    if witness.sftp_connection is None or witness.path is None:  # plan_check refuses it
        raise TransferError(f"witness {name}: an SFTP witness needs a connection and a path")
    conn = ctx.connectors.connection(witness.sftp_connection, "dossier witnesses (sftp)")
    dest = SftpDestination.from_connection(f"witness {name}", conn, path=witness.path)
    try:
        for leaf, data in files.items():
            digest = hashlib.sha256(data).hexdigest()
            item = Delivery(Path(leaf), f"{dossier}/{leaf}", len(data), digest)
            with dest.store(item) as folder:  # written beside, then renamed over
                upload = folder.upload(item.name, item.size)
                upload.write(data)
                upload.finish()
                upload.publish()
    finally:
        dest.close()
    where = f"{witness.path.rstrip('/')}/{dossier}/"
    return {"channel": "sftp", "connection": witness.sftp_connection, "path": where}


def _letter(organization: str, dossier: str, files: dict[str, bytes]) -> str:
    head = json.loads(files["head.json"])
    return (
        f"{organization} sealed the closure dossier {dossier} of a customer-data retirement.\n"
        "Attached is its signed head. Keep it: if the dossier shown to you later does not\n"
        "have this head.json and SHA256SUMS, it was changed after it was sealed.\n\n"
        f"chain head: {head.get('chain_head')}\n"
        f"signing key: {head.get('signing_key')}\n"
        "Check: openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin "
        "-in head.json -sigfile head.json.sig\n"
    )
