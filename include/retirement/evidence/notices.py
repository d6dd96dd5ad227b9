"""Customer notices for transfers (PIPL Art. 22): one per customer, in Chinese and English.

For every ``transfer`` disposition with ``notify_customers``, the customers are the rows of
its datasets that have an e-mail column (as the inventory detected it). Each notice names
the recipient and its contact, the kinds of personal information that go in plain words
(姓名、身份证号、银行卡号 / name, ID number, bank card number: from the identifier types the
inventory detected, never dataset names or class labels) and the date. Sensitive
identifiers appear only masked (all but the last 4 characters). The mail-merge CSV is
written age-encrypted to the disposition's archive key, never in plaintext; where the plan
names an SMTP connection, each notice is sent (STARTTLS, certificate verified) and each
send is recorded in the ledger with the address masked and as HMAC-SHA256 under the plan's
pseudonym key from the key store (never a plain hash: a dictionary of addresses would
reverse it). A re-run sends only what was not sent yet.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader

from retirement.evidence.notice_csv import write_csv
from retirement.model.ids import DatasetId

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger
    from retirement.model.records import DatasetRecord
    from retirement.plan.model import Plan, Recipient
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
    def normalized(self) -> bytes:
        return self.email.strip().lower().encode()

    def to_hmac(self, key: bytes) -> str:
        """The address as HMAC-SHA256 under the plan's pseudonym key: what the ledger keeps."""
        return hmac.new(key, self.normalized, hashlib.sha256).hexdigest()

    @property
    def to_sha256(self) -> str:
        """The plain SHA-256 that ledgers before the pseudonym key recorded (read only to
        know what an earlier attempt of such a run sent; never written)."""
        return hashlib.sha256(self.normalized).hexdigest()


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


# What a detected identifier type is, in the customer's words: (中文, English), in the order
# a notice lists them.
KINDS = {
    "person_name": ("姓名", "name"),
    "cn_resident_id": ("身份证号", "ID number"),
    "passport": ("护照号", "passport number"),
    "bank_card": ("银行卡号", "bank card number"),
    "cn_mobile": ("手机号码", "mobile phone number"),
    "cn_landline": ("固定电话号码", "telephone number"),
    "email": ("电子邮箱", "e-mail address"),
    "address": ("地址", "address"),
    "ip_address": ("IP 地址", "IP address"),
    "cn_uscc": ("统一社会信用代码", "unified social credit code"),
}
OTHER = ("其他个人信息", "other personal information")
RECORDS = ("您的客户资料", "your customer records")


def kinds_of(detected: Iterable[str | None]) -> tuple[str, str]:
    """The kinds of personal information that go, in plain words (Chinese, English), from
    the identifier types the inventory detected (never dataset names or class labels)."""
    found = {d for d in detected if d}
    words = [KINDS[k] for k in KINDS if k in found]
    if found - KINDS.keys():  # a detector the plan added
        words.append(OTHER)
    if not words:
        words = [RECORDS]
    return "、".join(zh for zh, _ in words), ", ".join(en for _, en in words)


def _detected(detail: dict[str, Any]) -> list[str | None]:
    return [c.get("detected") for c in detail.get("columns", [])]


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
    for name in notified_dispositions(plan):
        if only is not None and name != only:
            continue
        recipient_name = plan.dispositions[name].recipient
        if recipient_name is None:  # notified_dispositions keeps only those with one
            continue
        members = [s for s in states if s.disposition == name]
        letter = _Letter(
            plan,
            name,
            plan.recipients[recipient_name],
            kinds_of(d for s in members for d in _detected(s.inventory)),
            date,
        )
        seen: set[bytes] = set()  # one notice per address across the disposition's datasets
        for state in members:
            yield from _dataset_notices(letter, state, source_for, seen)


@dataclass(frozen=True)
class _Letter:
    """What every notice of one disposition says, whoever it goes to."""

    plan: Plan
    disposition: str
    recipient: Recipient
    kinds: tuple[str, str]  # the kinds of information that go, in plain words (zh, en)
    date: str

    def notice(self, dataset: str, email: str, person: Any, masked: str | None) -> Notice:
        zh_reason, en_reason = _REASONS[self.plan.scenario]
        values = {
            "name": person,
            "org": self.plan.organization.name,
            "recipient": self.recipient,
            "kinds_zh": self.kinds[0],
            "kinds_en": self.kinds[1],
            "date": self.date,
            "masked_id": masked,
            "reason_zh": zh_reason,
            "reason_en": en_reason,
        }
        return Notice(
            self.disposition,
            dataset,
            email,
            person,
            masked,
            f"个人信息转移告知 / Notice of transfer of your personal information: "
            f"{self.recipient.name}",
            _ENV.get_template("notice.zh.txt.j2").render(**values),
            _ENV.get_template("notice.en.txt.j2").render(**values),
        )


def _dataset_notices(
    letter: _Letter, state: DatasetRecord, source_for: Callable[[str], Source], seen: set[bytes]
) -> Iterator[Notice]:
    """The notices of one dataset's customers whose address is not in ``seen`` (added)."""
    detail = state.inventory
    email_col = _column(detail, ("email",))
    if detail.get("kind") != "table" or email_col is None:
        return
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
                yield letter.notice(state.dataset, str(email), person, masked)


def send(
    notices: Iterable[Notice],
    *,
    conn: ConnectionInfo,
    sender: str,
    ledger: Ledger,
    run_id: str,
    actor: str,
    pseudonym_key: bytes,
    plaintext_for_tests: bool = False,
) -> int:
    """Send every notice not yet recorded as sent in this run; return how many were sent
    (over implicit TLS or STARTTLS: ``plaintext_for_tests`` is for tests only). Each
    address is recorded masked and as HMAC-SHA256 under ``pseudonym_key``."""
    from retirement.connect.smtp import smtp_mode, smtp_session, stamp

    sent_before = {
        (e.payload.get("disposition"), e.payload.get("to_hmac") or e.payload.get("to_sha256"))
        for e in ledger.events_of(run_id, ("notice_sent",))
    }
    todo = (
        n
        for n in notices
        if (n.disposition, n.to_hmac(pseudonym_key)) not in sent_before
        and (n.disposition, n.to_sha256) not in sent_before
    )
    first = next(todo, None)
    if first is None:
        return 0
    sent = 0
    mode = smtp_mode(conn)
    with smtp_session(conn, plaintext_for_tests=plaintext_for_tests) as smtp:
        for n in itertools.chain([first], todo):
            sent += 1
            message = EmailMessage()
            message["From"] = sender
            message["To"] = n.email
            message["Subject"] = n.subject
            message.set_content(n.body_zh + "\n\n----\n\n" + n.body_en)
            stamp(message, sender)
            smtp.send_message(message)
            ledger.append(
                "notice_sent",
                actor=actor,
                run_id=run_id,
                dataset=n.dataset,
                payload={
                    "disposition": n.disposition,
                    "to": mask_email(n.email),
                    "to_hmac": n.to_hmac(pseudonym_key),
                    "via": f"smtp {conn.host}:{conn.port} ({mode})",
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
            ledger.add_artifact(
                run_id, kind="notices", location=path, sha256=sha, actor=actor, detail=detail
            )
        if smtp is not None and plan.notices is not None:
            summary["sent"] += send(
                customer_notices(plan, ledger, run_id, source_for, date, only=name),
                conn=smtp,
                sender=plan.notices.sender,
                ledger=ledger,
                run_id=run_id,
                actor=actor,
                pseudonym_key=keys.pseudonym_key(plan.name),
            )
    log.info("customer notices: %s built, %s sent", summary["notices"], summary["sent"])
    return summary
