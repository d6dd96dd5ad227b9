"""Customer notices for transfers (PIPL Art. 22): one per customer, in Chinese and English.

For every ``transfer`` disposition with ``notify_customers``, the customers are the rows of
its datasets that have an e-mail column (as the inventory detected it). Each notice names
the recipient and its contact, the data (datasets and classes) and the date. Sensitive
identifiers appear only masked (all but the last 4 characters). The mail-merge CSV is
written age-encrypted to the disposition's archive key, never in plaintext; where the plan
names an SMTP connection, each notice is sent (STARTTLS, certificate verified) and each
send is recorded in the ledger with the address masked and hashed. A re-run sends only
what was not sent yet.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from retirement.connection_info import ConnectionInfo
    from retirement.keys import KeyStore
    from retirement.ledger import Ledger
    from retirement.plan import Plan
    from retirement.sources.base import Source

log = logging.getLogger(__name__)

_ENV = Environment(loader=PackageLoader("retirement", "templates"), autoescape=False)  # noqa: S701 (plain text)
_IDS = ("cn_resident_id", "passport", "bank_card", "cn_uscc")
_REASONS = {
    "deregistration": ("公司注销", "the company's deregistration"),
    "change": ("经营者变更", "a change of operator"),
    "transfer_liquidation": ("公司转让清算", "the company's transfer and liquidation"),
}


def mask(value: str, keep: int = 4) -> str:
    """All but the last ``keep`` characters replaced by ``*``."""
    value = str(value)
    return "*" * max(0, len(value) - keep) + value[-keep:]


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


@dataclass(frozen=True)
class Notice:
    disposition: str
    dataset: str
    email: str
    name: str | None
    masked_id: str | None
    subject: str
    body_zh: str
    body_en: str

    @property
    def to_sha256(self) -> str:
        return hashlib.sha256(self.email.strip().lower().encode()).hexdigest()


def _column(detail: dict[str, Any], types: tuple[str, ...]) -> str | None:
    for col in detail.get("columns", []):
        if col.get("detected") in types:
            return col["name"]
    return None


def customer_notices(
    plan: Plan, ledger: Ledger, run_id: str, source_for: Callable[[str], Source], date: str
) -> Iterator[Notice]:
    """Every notice the plan requires, streamed from the sources (one per e-mail address)."""
    states = ledger.dataset_states(run_id)
    zh_reason, en_reason = _REASONS[plan.scenario]
    for name, disp in plan.dispositions.items():
        if disp.action != "transfer" or not disp.notify_customers or not disp.recipient:
            continue
        recipient = plan.recipients[disp.recipient]
        members = [s for s in states if s["disposition"] == name]
        categories = "、".join(f"{s['dataset']} ({s['data_class']})" for s in members)
        seen: set[bytes] = set()
        for state in members:
            detail = state["detail"]
            email_col = _column(detail, ("email",))
            if detail.get("kind") != "table" or email_col is None:
                continue
            name_col = _column(detail, ("person_name",))
            id_col = _column(detail, _IDS)
            source_name, dataset = state["dataset"].split(".", 1)
            with source_for(source_name) as source:
                columns = [c.name for c in source.schema(dataset)]
                at = {c: columns.index(c) for c in (email_col, name_col, id_col) if c}
                for batch in source.batches(dataset):
                    for row in batch:
                        email = row[at[email_col]]
                        if not email or "@" not in str(email):
                            continue
                        key = hashlib.blake2b(str(email).lower().encode(), digest_size=8).digest()
                        if key in seen:
                            continue
                        seen.add(key)
                        person = row[at[name_col]] if name_col else None
                        masked = mask(row[at[id_col]]) if id_col and row[at[id_col]] else None
                        values = {
                            "name": person,
                            "org": plan.organization.name,
                            "recipient": recipient,
                            "categories": categories,
                            "date": date,
                            "masked_id": masked,
                            "reason_zh": zh_reason,
                            "reason_en": en_reason,
                        }
                        yield Notice(
                            name,
                            state["dataset"],
                            str(email),
                            person,
                            masked,
                            f"个人信息转移告知 / Notice of transfer of your personal information: "
                            f"{recipient.name}",
                            _ENV.get_template("notice.zh.txt.j2").render(**values),
                            _ENV.get_template("notice.en.txt.j2").render(**values),
                        )


def write_csv(notices: list[Notice], path: Path, recipients: list[str]) -> str:
    """The mail-merge CSV, age-encrypted to ``recipients``; returns its ciphertext sha256."""
    import pyrage

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name", "masked_id", "subject", "body_zh", "body_en"])
    for n in notices:
        writer.writerow([n.email, n.name or "", n.masked_id or "", n.subject, n.body_zh, n.body_en])
    sealed = pyrage.encrypt(
        buffer.getvalue().encode("utf-8"),
        [pyrage.x25519.Recipient.from_str(r) for r in recipients],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sealed)
    return hashlib.sha256(sealed).hexdigest()


def send(
    notices: list[Notice],
    *,
    conn: ConnectionInfo,
    sender: str,
    ledger: Ledger,
    run_id: str,
    actor: str,
) -> int:
    """Send every notice not yet recorded as sent in this run; return how many were sent."""
    import smtplib
    import ssl

    sent_before = {
        (e.payload.get("disposition"), e.payload.get("to_sha256"))
        for e in ledger.events(run_id=run_id)
        if e.kind == "notice_sent"
    }
    todo = [n for n in notices if (n.disposition, n.to_sha256) not in sent_before]
    if not todo:
        return 0
    context = ssl.create_default_context(cafile=conn.extra.get("ca_bundle"))
    starttls = str(conn.extra.get("starttls", "true")).lower() != "false"
    with smtplib.SMTP(conn.host or "localhost", int(conn.port or 587), timeout=30) as smtp:
        if starttls:
            smtp.starttls(context=context)
        if conn.login:
            smtp.login(conn.login, conn.password or "")
        for n in todo:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = n.email
            message["Subject"] = n.subject
            message.set_content(n.body_zh + "\n\n----\n\n" + n.body_en)
            smtp.send_message(message)
            ledger.append(
                "notice_sent",
                actor=actor,
                run_id=run_id,
                dataset=n.dataset,
                payload={
                    "disposition": n.disposition,
                    "to": mask_email(n.email),
                    "to_sha256": n.to_sha256,
                    "via": f"smtp {conn.host}:{conn.port} (STARTTLS {'on' if starttls else 'off'})",
                },
            )
    return len(todo)


def notify_customers(
    plan: Plan,
    *,
    ledger: Ledger,
    run_id: str,
    actor: str,
    keys: KeyStore,
    source_for: Callable[[str], Source],
    smtp: ConnectionInfo | None,
    output_dir: Path,
    date: str,
) -> dict[str, Any]:
    """Build the notices, write the encrypted CSV per disposition, send where configured."""
    from retirement.pipeline import safe_dir

    all_notices = list(customer_notices(plan, ledger, run_id, source_for, date))
    summary: dict[str, Any] = {"notices": len(all_notices), "sent": 0, "files": []}
    for name in sorted({n.disposition for n in all_notices}):
        mine = [n for n in all_notices if n.disposition == name]
        path = output_dir / "notices" / safe_dir(run_id) / f"{name}.notices.csv.age"
        summary["files"].append(str(path))
        recorded = [
            a for a in ledger.artifacts(run_id, kind="notices") if a["location"] == str(path)
        ]
        if recorded and path.exists():
            continue  # written by an earlier attempt
        sha = write_csv(mine, path, [keys.archive_key(plan.name, name).recipient])
        ledger.add_artifact(
            run_id,
            kind="notices",
            location=str(path),
            size=path.stat().st_size,
            sha256=sha,
            actor=actor,
            detail={"disposition": name, "notices": len(mine)},
        )
    if smtp is not None and plan.notices is not None:
        summary["sent"] = send(
            all_notices,
            conn=smtp,
            sender=plan.notices.sender,
            ledger=ledger,
            run_id=run_id,
            actor=actor,
        )
    log.info("customer notices: %s built, %s sent", summary["notices"], summary["sent"])
    return summary
