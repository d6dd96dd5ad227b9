"""The retirement plan: what the sources are, how data is classified, what happens to each class.

A plan is a YAML file (see ``include/plans/``). :func:`load_plan` reads it and returns a
frozen :class:`Plan`, or raises :class:`~retirement.errors.PlanError` listing every problem
with its file, line, field path, the wrong value and what was expected.

Plans never hold credentials: sources and destinations name Airflow connection ids.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

import pyrage
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from retirement.model.identifiers import is_valid_uscc
from retirement.plan.policy import ClassificationPolicy
from retirement.plan.reading import MAX_PLAN_BYTES

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
ConnectionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]

SCENARIOS = ("deregistration", "change", "transfer_liquidation")
ACTIONS = ("retain", "transfer", "destroy")


# Booleans and integers are strict (StrictBool, StrictInt): lax pydantic reads `years: true` as
# 1 and `auto_approve: "yes"` as True, which plan.header (and a reader of the file) would not.
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Contact(_Frozen):
    name: str = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = None
    address: str | None = None


class Organization(_Frozen):
    name: str = Field(min_length=1)
    uscc: str
    contact: Contact

    @field_validator("uscc")
    @classmethod
    def _uscc_checks(cls, value: str) -> str:
        if not is_valid_uscc(value):
            raise ValueError(
                "not a valid unified social credit code: 18 characters from "
                "0-9A-HJ-NPQRTUWXY whose last one is the GB 32100 mod-31 check character"
            )
        return value


class Source(_Frozen):
    """A store holding customer data; ``connection`` is an Airflow connection id."""

    name: Slug
    kind: Literal["postgres", "mysql", "sqlite", "files", "s3"]
    connection: ConnectionId
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    schema_name: str | None = Field(default=None, alias="schema")
    bucket: str | None = None
    prefix: str | None = None


class Retention(_Frozen):
    """How long a retained archive is kept, and under which law."""

    years: StrictInt | None = Field(default=None, gt=0, le=200)
    permanent: StrictBool = False
    legal_basis: str = Field(min_length=3)
    starts: Literal["fiscal_year_end", "retirement_date"] = "fiscal_year_end"


class Disposition(_Frozen):
    """What happens to a class of data: retain, transfer or destroy."""

    action: Literal["retain", "transfer", "destroy"]
    destinations: tuple[Slug, ...] = ()
    retention: Retention | None = None
    recipient: Slug | None = None
    keep_backup_days: StrictInt = Field(default=0, ge=0, le=3650)
    notify_customers: StrictBool = False
    legal_hold: str | None = None  # why the archives must outlive their retention (blocks expiry)


class DatasetRule(_Frozen):
    """Pins one dataset (``source.dataset``) to a disposition, optionally with its key."""

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]*\..+$")  # a DatasetId as printed
    disposition: Slug
    key: tuple[str, ...] = ()
    drop_table: StrictBool = False  # retire the table itself once its rows are deleted

    @field_validator("dataset")
    @classmethod
    def _dataset_id(cls, value: str) -> str:
        from retirement.model.ids import DatasetId

        try:
            return str(DatasetId.parse(value))
        except ValueError as exc:
            raise ValueError(
                f"{exc}: write the name as the inventory prints it ('%' and '#' inside a "
                "name as %25 and %23; a workbook's sheet after '#')"
            ) from None

    @field_validator("key")
    @classmethod
    def _key_columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "" in value:
            raise ValueError("a key column name is empty: name each column of the key")
        twice = sorted({column for column in value if value.count(column) > 1})
        if twice:
            raise ValueError(f"the key names column {', '.join(twice)} more than once")
        return value


class Destination(_Frozen):
    kind: Literal["sftp", "s3", "local"]
    connection: ConnectionId | None = None
    path: str | None = None
    bucket: str | None = None
    prefix: str = ""


class Recipient(_Frozen):
    """Who receives transferred data (PIPL Art. 22: name and contact go to every customer)."""

    name: str = Field(min_length=1)
    contact: Contact
    age_public_key: str
    cross_border_basis: str | None = None

    @field_validator("age_public_key")
    @classmethod
    def _age_key_parses(cls, value: str) -> str:
        try:
            pyrage.x25519.Recipient.from_str(value)
        except Exception as exc:  # pyrage raises its own RecipientError
            raise ValueError(
                "not an age X25519 public key: expected 'age1' followed by 58 bech32 "
                "characters, as printed by `age-keygen -y`"
            ) from exc
        return value


class Approver(_Frozen):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    email: str | None = None


class Approval(_Frozen):
    approvers: tuple[Approver, ...] = ()
    auto_approve: StrictBool = False


class Retries(_Frozen):
    """How Airflow retries a failed task of this plan (a network step, a busy database):
    ``attempts`` more tries, waiting ``delay_seconds`` and doubling up to ``max_delay_seconds``.
    Gates, approval and sealing never retry: their failures need a person."""

    attempts: StrictInt = Field(default=3, ge=0, le=20)
    delay_seconds: StrictInt = Field(default=20, ge=1, le=3600)
    max_delay_seconds: StrictInt = Field(default=600, ge=1, le=86400)


class Mapping(_Frozen):
    """How steps over many datasets become Airflow tasks: at most ``max_tasks`` mapped tasks
    per step (batches of datasets beyond that; keep it under ``[core] max_map_length``), all
    of the plan's tasks in ``pool`` when set (create it first: ``airflow pools set``)."""

    max_tasks: StrictInt = Field(default=256, ge=1, le=100_000)
    pool: str | None = Field(default=None, min_length=1, max_length=256)


class NoticeSettings(_Frozen):
    """Customer notices (PIPL Art. 22): who sends them and, optionally, over which SMTP
    connection (without one, only the mail-merge CSV is written)."""

    sender: str = Field(min_length=3)
    smtp_connection: ConnectionId | None = None


class Plan(_Frozen):
    """A whole retirement plan, validated and cross-checked."""

    name: Slug
    title: str = ""
    description: str = ""
    scenario: Literal["deregistration", "change", "transfer_liquidation"]
    organization: Organization
    sources: tuple[Source, ...] = Field(min_length=1)
    classification: ClassificationPolicy = Field(default_factory=ClassificationPolicy.default)
    dispositions: dict[Slug, Disposition] = Field(min_length=1)
    by_class: dict[str, Slug]
    datasets: tuple[DatasetRule, ...] = ()
    destinations: dict[Slug, Destination] = Field(default_factory=dict)
    recipients: dict[Slug, Recipient] = Field(default_factory=dict)
    approval: Approval = Field(default_factory=Approval)
    notices: NoticeSettings | None = None
    retries: Retries = Field(default_factory=Retries)
    mapping: Mapping = Field(default_factory=Mapping)

    # Set by the loader, not by the file.
    source_file: str = Field(default="", exclude=True)
    sha256: str = Field(default="", exclude=True)

    @property
    def dag_id(self) -> str:
        return f"retire__{self.name}"

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def disposition_for(self, dataset: str, data_class: str) -> str:
        """The disposition name of ``dataset`` (``source.table``) whose class is ``data_class``."""
        for rule in self.datasets:
            if rule.dataset == dataset:
                return rule.disposition
        return self.by_class[data_class]


def plan_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def load_plan(path: str | Path) -> Plan:
    """Read, validate and cross-check the plan at ``path``; raise PlanError if anything is wrong.

    A plan is read once per content: steps over thousands of datasets ask for it per dataset
    (validation costs ~7 ms), and a Plan is frozen, so the same bytes give the same object."""
    from retirement.plan.loader import load  # the YAML/line-number machinery lives there

    path = Path(path)
    try:
        with path.open("rb") as file:  # a file too large gets a key no loaded plan has
            key = (str(path), plan_sha256(file.read(MAX_PLAN_BYTES + 1)))
    except OSError:
        return load(path)  # which names the file and what is wrong
    plan = _PLANS.get(key)
    if plan is None:
        plan = load(path)
        if plan.sha256 == key[1]:  # not changed between the two reads
            if len(_PLANS) >= 64:
                _PLANS.clear()
            _PLANS[key] = plan
    return plan


_PLANS: dict[tuple[str, str], Plan] = {}
