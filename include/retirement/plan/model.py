"""The retirement plan: what the sources are, how data is classified, what happens to each class.

A plan is a YAML file (see ``include/plans/``). :func:`load_plan` reads it and returns a
frozen :class:`Plan`, or raises :class:`~retirement.errors.PlanError` listing every problem
with its file, line, field path, the wrong value and what was expected.

Plans never hold credentials: sources and destinations name Airflow connection ids.
"""

from __future__ import annotations

import hashlib
from datetime import date  # noqa: TC003 (pydantic reads the annotation at run time)
from pathlib import Path
from typing import Literal

import pyrage
from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from retirement.plan.parties import Contact as Contact  # noqa: TC001 (pydantic, at run time)
from retirement.plan.parties import Language as Language
from retirement.plan.parties import Organization as Organization  # noqa: TC001 (pydantic, at run time)
from retirement.plan.parties import Person as Person
from retirement.plan.parties import Sanitization as Sanitization  # noqa: TC001 (pydantic, at run time)
from retirement.plan.policy import ClassificationPolicy
from retirement.plan.reading import MAX_PLAN_BYTES
from retirement.plan.running import Approval as Approval
from retirement.plan.running import Approver as Approver
from retirement.plan.running import ConnectionId as ConnectionId
from retirement.plan.running import Notify as Notify
from retirement.plan.running import Retries as Retries
from retirement.plan.running import Slug as Slug
from retirement.plan.running import Timeouts as Timeouts
from retirement.plan.running import _Frozen

SCENARIOS = ("deregistration", "change", "transfer_liquidation")
ACTIONS = ("retain", "transfer", "destroy")


# After row deletion, a table that remains may be rewritten so the deleted rows' bytes leave
# its files: VACUUM FULL (PostgreSQL; SQLite's VACUUM rewrites the whole file), OPTIMIZE
# TABLE (MySQL/MariaDB, a rebuild for InnoDB), or none (PostgreSQL: plain VACUUM only).
Rewrite = Literal["vacuum_full", "optimize", "none"]
_REWRITES = {"postgres": ("vacuum_full", "none"), "sqlite": ("vacuum_full", "none")}
_REWRITES["mysql"] = ("optimize", "none")


def rewrite_problem(kind: str, rewrite: str | None) -> str | None:
    """Why ``rewrite`` does not fit a source of ``kind`` (None: it fits)."""
    if rewrite is None or rewrite in _REWRITES.get(kind, ()):
        return None
    allowed = _REWRITES.get(kind)
    if not allowed:
        return f"a {kind} source has no tables to rewrite: remove rewrite"
    return f"{rewrite} is not for a {kind} source: use {' or '.join(allowed)}"


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
    rewrite: Rewrite | None = None  # what is done to a table after its rows are deleted

    @model_validator(mode="after")
    def _rewrite_fits(self) -> Source:
        problem = rewrite_problem(self.kind, self.rewrite)
        if problem:
            raise ValueError(f"rewrite: {problem}")
        return self


class Retention(_Frozen):
    """How long a retained archive is kept, and under which law."""

    years: StrictInt | None = Field(default=None, gt=0, le=200)
    permanent: StrictBool = False
    legal_basis: str = Field(min_length=3)
    starts: Literal["fiscal_year_end", "retirement_date"] = "fiscal_year_end"


class LegalBasis(_Frozen):
    """Why the data is deleted at its source (PIPL Art. 47) and, for a transfer, why it may
    go to the recipient (PIPL Art. 22): the text a certificate quotes."""

    deletion: str | None = Field(default=None, min_length=3)
    transfer: str | None = Field(default=None, min_length=3)


class ImpactAssessment(_Frozen):
    """The personal-information protection impact assessment (PIPL Art. 55-56) of a transfer
    of sensitive data: the report's file name and its SHA-256."""

    file: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Disposition(_Frozen):
    """What happens to a class of data: retain, transfer or destroy."""

    action: Literal["retain", "transfer", "destroy"]
    destinations: tuple[Slug, ...] = ()
    retention: Retention | None = None
    recipient: Slug | None = None
    keep_backup_days: StrictInt = Field(default=0, ge=0, le=3650)
    notify_customers: StrictBool = False
    legal_hold: str | None = None  # why the archives must outlive their retention (blocks expiry)
    legal_basis: LegalBasis = Field(default_factory=LegalBasis)
    impact_assessment: ImpactAssessment | None = None  # transfers of sensitive data need one


class DatasetRule(_Frozen):
    """Pins one dataset (``source.dataset``) to a disposition, optionally with its key."""

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]*\..+$")  # a DatasetId as printed
    disposition: Slug
    key: tuple[str, ...] = ()
    drop_table: StrictBool = False  # retire the table itself once its rows are deleted
    # A table the plan keeps references this one (foreign key): keep this one at the source
    # too, or let the constraint's ON DELETE action (CASCADE, SET NULL) change the kept rows.
    on_referenced: Literal["cascade", "keep"] | None = None
    rewrite: Rewrite | None = None  # overrides the source's rewrite for this table

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


class ResidualCopy(_Frozen):
    """A copy of the data the pipeline cannot reach (a WAL/PITR archive, a replica, the
    source's own backups or snapshots, another system): someone must deal with it by
    ``due`` and attest it (``retirement attest-residual``)."""

    what: str = Field(min_length=3)
    kind: Literal["wal_pitr", "replica", "source_backup", "snapshot", "other_system"]
    responsible: str = Field(min_length=1)
    due: date


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


class Witness(_Frozen):
    """Someone outside the operator who receives the signed head of the sealed dossier: by
    e-mail (over the evidence's, or else the notices', SMTP connection) or into a folder
    over SFTP (``sftp_connection`` and ``path``)."""

    name: str = Field(min_length=1)
    role: Literal["recipient", "auditor", "regulator", "other"] = "auditor"
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    sftp_connection: ConnectionId | None = None
    path: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> Witness:
        if (self.email is None) == (self.sftp_connection is None):
            raise ValueError("give the witness either email or sftp_connection (with path)")
        if self.sftp_connection is not None and self.path is None:
            raise ValueError("an SFTP witness needs the path of the folder to write to")
        return self


class EvidenceSettings(_Frozen):
    """Anchors of the evidence outside the operator: an RFC 3161 time-stamping authority
    (an Airflow HTTP connection id) that time-stamps the chain head at each gate and the
    dossier at seal, and the witnesses the seal sends the signed head to."""

    timestamp_authority: ConnectionId | None = None
    smtp_connection: ConnectionId | None = None  # for e-mail witnesses (default: notices')
    witnesses: dict[Slug, Witness] = Field(default_factory=dict)


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
    # Per dataset (``source.dataset``), the columns that name a customer: certificates count
    # the individuals affected as the distinct values of these columns in the backup.
    customer_keys: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    destinations: dict[Slug, Destination] = Field(default_factory=dict)
    recipients: dict[Slug, Recipient] = Field(default_factory=dict)
    approval: Approval = Field(default_factory=Approval)
    notices: NoticeSettings | None = None
    sanitization: Sanitization | None = None
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    residual_copies: dict[Slug, ResidualCopy] = Field(default_factory=dict)
    retries: Retries = Field(default_factory=Retries)
    notify: Notify | None = None
    mapping: Mapping = Field(default_factory=Mapping)

    # Set by the loader, not by the file.
    source_file: str = Field(default="", exclude=True)
    sha256: str = Field(default="", exclude=True)

    @field_validator("customer_keys")
    @classmethod
    def _customer_keys(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        from retirement.model.ids import DatasetId

        out = {}
        for dataset, columns in value.items():
            try:
                name = str(DatasetId.parse(dataset))
            except ValueError as exc:
                raise ValueError(f"{dataset}: {exc}") from None
            if not columns or "" in columns:
                raise ValueError(f"{dataset}: name each column that identifies a customer")
            out[name] = columns
        return out

    @model_validator(mode="after")
    def _witness_mail_has_smtp(self) -> Plan:
        mailed = sorted(n for n, w in self.evidence.witnesses.items() if w.email)
        if mailed and self.witness_smtp is None:
            raise ValueError(
                f"evidence.witnesses {', '.join(mailed)}: e-mail witnesses need an SMTP "
                "connection: set evidence.smtp_connection (or notices.smtp_connection)"
            )
        return self

    @property
    def witness_smtp(self) -> str | None:
        """The SMTP connection e-mail witnesses are sent over."""
        if self.evidence.smtp_connection:
            return self.evidence.smtp_connection
        return self.notices.smtp_connection if self.notices else None

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
