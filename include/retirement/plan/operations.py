"""The operational settings of a plan as the DAG takes them at parse time: who may approve
(Airflow user ids), how many must, how long the approval waits, how long each kind of task
and the whole run may take, and where notifications go. Read with YAML only, never failing:
a value the model would refuse gives the default here, and plan_check says what is wrong.
The model (``plan.model``) has the same defaults; a test holds them equal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retirement.plan import durations

TIMEOUT_KINDS = ("inventory", "backup", "transfer", "delete", "gate", "other", "run")
DEFAULT_TIMEOUTS = {
    "inventory": "6h",
    "backup": "6h",
    "transfer": "6h",
    "delete": "6h",
    "gate": "6h",
    "other": "1h",
    "run": "14d",
}
NOTIFY_EVENTS = ("failure", "approval", "sealed")


@dataclass(frozen=True)
class ApproverUser:
    user: str  # the Airflow user id
    name: str


@dataclass(frozen=True)
class Notification:
    connection: str | None  # smtp
    to: tuple[str, ...]
    sender: str | None = None
    events: tuple[str, ...] = NOTIFY_EVENTS
    webhook: str | None = None  # http


@dataclass(frozen=True)
class Operations:
    approvers: tuple[ApproverUser, ...] = ()
    required: int = 1
    approval_timeout: int | None = None  # seconds
    timeouts: dict[str, int] = field(
        default_factory=lambda: {k: durations.seconds(v) or 0 for k, v in DEFAULT_TIMEOUTS.items()}
    )
    notify: Notification | None = None


def read_operations(data: dict[str, Any]) -> Operations:
    approval = data.get("approval")
    approval = approval if isinstance(approval, dict) else {}
    return Operations(
        approvers=_approvers(approval.get("approvers")),
        required=_required(approval.get("required")),
        approval_timeout=durations.seconds(approval.get("timeout")),
        timeouts=_timeouts(data.get("retries")),
        notify=_notify(data.get("notify")),
    )


def _approvers(items: Any) -> tuple[ApproverUser, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(
        ApproverUser(str(item["user"]), str(item.get("name") or item["user"]))
        for item in items
        if isinstance(item, dict) and isinstance(item.get("user"), str) and item["user"]
    )


def _required(value: Any) -> int:
    return value if type(value) is int and 1 <= value <= 10 else 1


def _timeouts(retries: Any) -> dict[str, int]:
    block = retries.get("timeouts") if isinstance(retries, dict) else None
    block = block if isinstance(block, dict) else {}
    return {
        kind: durations.seconds(block.get(kind, default)) or durations.seconds(default) or 0
        for kind, default in DEFAULT_TIMEOUTS.items()
    }


def _notify(block: Any) -> Notification | None:
    if not isinstance(block, dict):
        return None
    connection, webhook = block.get("connection"), block.get("webhook")
    connection = connection if isinstance(connection, str) else None
    webhook = webhook if isinstance(webhook, str) else None
    to = block.get("to")
    to = tuple(to) if isinstance(to, list) and all(isinstance(t, str) for t in to) else ()
    if connection is not None and not to:
        connection = None
    if connection is None and webhook is None:
        return None
    events = block.get("events", list(NOTIFY_EVENTS))
    if not isinstance(events, list) or not set(events) <= set(NOTIFY_EVENTS):
        events = list(NOTIFY_EVENTS)
    sender = block.get("sender")
    return Notification(
        connection=connection,
        to=to,
        sender=sender if isinstance(sender, str) else None,
        events=tuple(events),
        webhook=webhook,
    )
