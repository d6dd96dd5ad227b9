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
import itertools
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader

from retirement.model.ids import DatasetId

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan
    from retirement.sources.base import Source

log = logging.getLogger(__name__)

# The notices are plain text (e-mail bodies), not HTML: nothing to escape.
_ENV = Environment(loader=PackageLoader("retirement.evidence", "templates"), autoescape=False)
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
            name: str = col["name"]
            return name
    return None


def notified_dispositions(plan: Plan) -> list[str]:
    """The dispositions whose customers get a notice: transfers that ask for one."""
    return [
        name
        for name, disp in plan.dispositions.items()
        if disp.action == "transfer" and disp.notify_customers and disp.recipient
    ]


def categories_of(members: list[tuple[str, str | None]], limit: int = 12) -> str:
    """Which data goes (``members``: each dataset's name and class): each dataset with its
    class, or for many, a count per source and class (a notice must stay readable when a
    transfer holds thousands of tables)."""
    if len(members) <= limit:
        return "、".join(f"{dataset} ({data_class})" for dataset, data_class in members)
    counts: dict[tuple[str, str | None], int] = {}
    for dataset, data_class in members:
        key = (DatasetId.parse(dataset).source, data_class)
        counts[key] = counts.get(key, 0) + 1
    return "、".join(f"{src}: {n} datasets ({cls})" for (src, cls), n in sorted(counts.items()))


def customer_notices(
    plan: Plan,
    ledger: Ledger,
    run_id: str,
    source_for: Callable[[str], Source],
    date: str,
    *,
    only: str | None = None,
) -> Iterator[Notice]:
    """Every notice the plan requires (of disposition ``only`` if given), streamed from the
    sources, one per e-mail address."""
    states = ledger.dataset_states(run_id)
    zh_reason, en_reason = _REASONS[plan.scenario]
    for name in notified_dispositions(plan):
        if only is not None and name != only:
            continue
        recipient_name = plan.dispositions[name].recipient
        if recipient_name is None:  # notified_dispositions keeps only those with one
            continue
        recipient = plan.recipients[recipient_name]
        members = [s for s in states if s.disposition == name]
        categories = categories_of([(s.dataset, s.data_class) for s in members])
        seen: set[bytes] = set()
        for state in members:
            detail = state.inventory
            email_col = _column(detail, ("email",))
            if detail.get("kind") != "table" or email_col is None:
                continue
            name_col = _column(detail, ("person_name",))
            id_col = _column(detail, _IDS)
            dataset = DatasetId.parse(state.dataset)
            with source_for(dataset.source) as source:
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
                            state.dataset,
                            str(email),
                            person,
                            masked,
                            f"个人信息转移告知 / Notice of transfer of your personal information: "
                            f"{recipient.name}",
                            _ENV.get_template("notice.zh.txt.j2").render(**values),
                            _ENV.get_template("notice.en.txt.j2").render(**values),
                        )


class _CsvStream(io.RawIOBase):
    """The mail-merge CSV as a readable stream, rendered row by row (never whole in memory,
    never on disk in plaintext); counts the notices it has given out."""

    def __init__(self, notices: Iterable[Notice]) -> None:
        self._rows = iter(notices)
        self._pending = self._line(["email", "name", "masked_id", "subject", "body_zh", "body_en"])
        self.count = 0

    @staticmethod
    def _line(fields: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out).writerow(fields)
        return out.getvalue().encode("utf-8")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            n = next(self._rows, None)
            if n is None:
                break
            self.count += 1
            self._pending += self._line(
                [n.email, n.name or "", n.masked_id or "", n.subject, n.body_zh, n.body_en]
            )
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def write_csv(notices: Iterable[Notice], path: Path, recipients: list[str]) -> tuple[str, int]:
    """The mail-merge CSV, age-encrypted to ``recipients`` as it is rendered; returns its
    ciphertext sha256 and the number of notices. Written under a temporary name first."""
    import pyrage

    from retirement.crypto.age import HashingWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    stream = _CsvStream(notices)
    try:
        with partial.open("wb") as f:
            hashed = HashingWriter(f)
            pyrage.encrypt_io(
                stream, hashed, [pyrage.x25519.Recipient.from_str(r) for r in recipients]
            )
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return hashed.sha.hexdigest(), stream.count


def send(
    notices: Iterable[Notice],
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
        for e in ledger.events_of(run_id, ("notice_sent",))
    }
    todo = (n for n in notices if (n.disposition, n.to_sha256) not in sent_before)
    first = next(todo, None)
    if first is None:
        return 0
    sent = 0
    context = ssl.create_default_context(cafile=conn.extra.get("ca_bundle"))
    starttls = str(conn.extra.get("starttls", "true")).lower() != "false"
    with smtplib.SMTP(conn.host or "localhost", int(conn.port or 587), timeout=30) as smtp:
        if starttls:
            smtp.starttls(context=context)
        if conn.login:
            smtp.login(conn.login, conn.password or "")
        for n in itertools.chain([first], todo):
            sent += 1
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
    return sent


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
    from retirement.phases.context import safe_dir

    summary: dict[str, Any] = {"notices": 0, "sent": 0, "files": []}
    for name in notified_dispositions(plan):
        path = output_dir / "notices" / safe_dir(run_id) / f"{name}.notices.csv.age"
        summary["files"].append(str(path))
        recorded = [
            a for a in ledger.artifacts(run_id, kind="notices") if a["location"] == str(path)
        ]
        if recorded and path.exists():  # written by an earlier attempt
            summary["notices"] += json.loads(recorded[0]["detail"]).get("notices", 0)
        else:
            sha, count = write_csv(
                customer_notices(plan, ledger, run_id, source_for, date, only=name),
                path,
                [keys.archive_key(plan.name, name).recipient],
            )
            if not count:
                path.unlink()
                summary["files"].pop()
                continue
            summary["notices"] += count
            detail = {"disposition": name, "notices": count}
            ledger.add_file(
                run_id, kind="notices", path=path, sha256=sha, actor=actor, detail=detail
            )
        if smtp is not None and plan.notices is not None:
            summary["sent"] += send(
                customer_notices(plan, ledger, run_id, source_for, date, only=name),
                conn=smtp,
                sender=plan.notices.sender,
                ledger=ledger,
                run_id=run_id,
                actor=actor,
            )
    log.info("customer notices: %s built, %s sent", summary["notices"], summary["sent"])
    return summary
