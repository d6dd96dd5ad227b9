"""How a plan runs, as the model validates it: who approves the deletion (named Airflow
users, how many distinct ones, how long the wait), how tasks retry and how long each kind may
run, and who is notified. ``plan.operations`` reads the same settings cheaply for the DAG; a
test holds their defaults equal."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from retirement.plan import durations

ConnectionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]  # names in a plan
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


# Booleans and integers are strict (StrictBool, StrictInt): lax pydantic reads `years: true` as
# 1 and `auto_approve: "yes"` as True, which plan.header (and a reader of the file) would not.
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _duration(value: str | None) -> str | None:
    if value is not None and durations.seconds(value) is None:
        raise ValueError(
            "not a duration: a whole number and a unit (s, m, h or d), at most a year, "
            "e.g. 45m, 6h, 3d"
        )
    return value


class Approver(_Frozen):
    """A person who may approve the deletion; ``user`` is their Airflow user id (what the
    auth manager reports: the username with the simple auth manager, the numeric id of
    `airflow users list` with FAB), the only one Airflow lets answer for them."""

    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    email: str | None = None
    user: str | None = Field(default=None, min_length=1, max_length=256)


class Approval(_Frozen):
    """Who approves the deletion: ``required`` distinct approvers of ``approvers`` (a
    two-person rule with 2), each within ``timeout`` (unset: no limit but the run's)."""

    approvers: tuple[Approver, ...] = ()
    auto_approve: StrictBool = False
    required: StrictInt = Field(default=1, ge=1, le=10)
    timeout: str | None = None

    _timeout = field_validator("timeout")(_duration)

    @property
    def timeout_seconds(self) -> int | None:
        return durations.seconds(self.timeout) if self.timeout else None

    @model_validator(mode="after")
    def _named_approvers(self) -> Approval:
        if self.auto_approve:
            return self
        unnamed = [a.name for a in self.approvers if a.user is None]
        if unnamed:
            raise ValueError(
                f"approver {', '.join(unnamed)} has no `user`: name the Airflow user id that "
                "may answer for each approver (anyone could approve otherwise)"
            )
        users = [a.user for a in self.approvers]
        twice = sorted({u for u in users if u is not None and users.count(u) > 1})
        if twice:
            raise ValueError(f"user {', '.join(twice)} is named for more than one approver")
        if self.approvers and self.required > len(self.approvers):
            raise ValueError(
                f"required is {self.required} but only {len(self.approvers)} approver(s) are "
                "named: name at least as many approvers as must approve"
            )
        return self


class Timeouts(_Frozen):
    """How long one task of each kind may run before Airflow stops it (execution_timeout),
    and how long a whole run may take (dagrun_timeout, the approval's wait included)."""

    inventory: str = "6h"
    backup: str = "6h"
    transfer: str = "6h"
    delete: str = "6h"
    gate: str = "6h"
    other: str = "1h"  # plan_check, deliveries, notices, the deletion request, seal
    run: str = "14d"

    _durations = field_validator("*")(_duration)


class Retries(_Frozen):
    """How Airflow retries a failed task of this plan (a network step, a busy database):
    ``attempts`` more tries, waiting ``delay_seconds`` and doubling up to ``max_delay_seconds``.
    Gates, approval and sealing never retry: their failures need a person. ``timeouts``: how
    long a task of each kind may run."""

    attempts: StrictInt = Field(default=3, ge=0, le=20)
    delay_seconds: StrictInt = Field(default=20, ge=1, le=3600)
    max_delay_seconds: StrictInt = Field(default=600, ge=1, le=86400)
    timeouts: Timeouts = Field(default_factory=Timeouts)


class Notify(_Frozen):
    """Who hears of the run: mail over the Airflow SMTP connection ``connection`` to ``to``,
    and/or a JSON POST (``{"text": ...}``, what Slack's incoming webhooks take) over the
    Airflow HTTP connection ``webhook``, when a task fails after its retries, when the
    approval waits (with the link to answer it) and when the run is sealed (``events``)."""

    connection: ConnectionId | None = None
    to: tuple[Email, ...] = ()
    sender: Email | None = None
    webhook: ConnectionId | None = None
    events: tuple[Literal["failure", "approval", "sealed"], ...] = (
        "failure",
        "approval",
        "sealed",
    )

    @model_validator(mode="after")
    def _somewhere(self) -> Notify:
        if self.connection is None and self.webhook is None:
            raise ValueError("name an smtp `connection` (with `to`), a `webhook`, or both")
        if self.connection is not None and not self.to:
            raise ValueError("`to` lists who gets the mail sent over `connection`")
        return self
