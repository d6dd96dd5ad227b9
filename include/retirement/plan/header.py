"""A plan's header read cheaply, for DAG parsing: name, title, scenario, description and
the settings the DAG itself takes (approval.auto_approve, retries, mapping.pool); the tasks
the DAG runs, in order (``PHASES``), for its doc.

The DAG factory must not fail to build a DAG because a plan is wrong: it reads only this
header, and the DAG's first task runs the full validation and reports every problem. It
imports YAML and nothing heavier (no pydantic, no database driver): a DAG file's parse
should cost little (Airflow's best practices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.errors import PlanError
from retirement.plan.operations import Operations, read_operations
from retirement.plan.reading import parse, read_bytes

if TYPE_CHECKING:
    from pathlib import Path

_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_")
_SLUG = re.compile(r"[^a-z0-9_]+")


# The tasks of a plan's DAG in the order they run (dags/retire.py wires them; a test holds the
# two equal), each with what the doc says of it.
PHASES = (
    ("plan_check", ""),
    ("inventory", "one task per source"),
    ("preview", "a dry_run stops here with the preview report"),
    ("gate_inventory", ""),
    ("backup", "mapped over batches of datasets"),
    ("gate_backup", "restore-verify"),
    ("deliveries", ""),
    ("transfer", "mapped over batches of deliveries, ordered by destination"),
    ("gate_transfer", ""),
    ("notify_customers", ""),
    ("deletion_request", ""),
    ("approve_deletion", "{approval}"),
    ("delete", "mapped over batches of datasets"),
    ("gate_deletion", ""),
    ("seal", "the closure dossier"),
)


@dataclass(frozen=True)
class Retries:
    """A plan's ``retries`` block as the DAG needs it (the model, ``plan.model.Retries``,
    has the same defaults and limits: a test holds them equal)."""

    attempts: int = 3
    delay_seconds: int = 20
    max_delay_seconds: int = 600

    LIMITS = {"attempts": (0, 20), "delay_seconds": (1, 3600), "max_delay_seconds": (1, 86400)}


def dag_name_for_file(path: Path) -> str:
    """A DAG-safe fallback name for a plan file whose ``name`` cannot be read."""
    return _SLUG.sub("_", path.stem.lower()).strip("_") or "plan"


def dag_id(plan_name: str) -> str:
    """The id of the DAG a plan becomes (what Airflow's access rules name)."""
    return f"retire__{plan_name}"


@dataclass(frozen=True)
class PlanHeader:
    path: Path
    name: str
    title: str
    scenario: str
    description: str
    problem: str | None = None
    auto_approve: bool = False  # approval.auto_approve: the deletion needs no person
    retries: Retries = Retries()  # a wrong `retries` block: the defaults, plan_check says why
    pool: str | None = None  # mapping.pool: every task of the plan runs in this Airflow pool
    ops: Operations = Operations()  # approvers, timeouts, notifications (plan.operations)

    @property
    def dag_id(self) -> str:
        return dag_id(self.name)

    @property
    def approvals_required(self) -> int:
        """How many distinct people approve the deletion (one task each)."""
        return 0 if self.auto_approve else self.ops.required

    def doc_md(self) -> str:
        lines = [
            f"# {self.title or self.name}",
            "",
            f"Retirement plan `{self.path.name}`, scenario **{self.scenario or '?'}**.",
            "",
        ]
        if self.problem:
            lines += [
                f"**This plan cannot be read:** {self.problem}.",
                "The `plan_check` task lists every problem; fix the file and re-run.",
                "",
            ]
        if self.description:
            lines += [self.description.strip(), ""]
        approval = (
            "automatic: the plan sets approval.auto_approve, recorded as such"
            if self.auto_approve
            else "a person named in the plan approves or rejects in the Airflow UI"
            + "".join(
                f"; then approve_deletion_{n}, another of them"
                for n in range(2, self.approvals_required + 1)
            )
        )
        phases = " → ".join(
            f"{task} ({note.format(approval=approval)})" if note else task for task, note in PHASES
        )
        lines += [
            f"Phases: {phases}. A mapped task takes one item, or a batch of them when there are "
            "more than mapping.max_tasks. A failed gate stops everything after it. "
            "Every task is idempotent: clear and re-run any failed task."
        ]
        return "\n".join(lines)


def read_header(path: Path) -> PlanHeader:
    """Read the header of the plan at ``path``; never raises for a wrong plan.

    The file is read as the loader reads it (size, encoding, tags, a bound on the nodes that
    aliases expand to), so a file the loader refuses unread has a ``problem`` here."""
    fallback = dag_name_for_file(path)
    try:
        data, _lines, _duplicates = parse(str(path), read_bytes(path))
    except PlanError as exc:
        issue = exc.issues[0]
        where = f"line {issue.line}: " if issue.line else ""
        return PlanHeader(path, fallback, "", "", "", problem=where + issue.message)
    if not isinstance(data, dict):
        return PlanHeader(path, fallback, "", "", "", problem="the file is not a YAML mapping")
    name = data.get("name")
    good = isinstance(name, str) and name[:1].isalpha() and set(name) <= _NAME_OK
    return PlanHeader(
        path=path,
        name=name if good and isinstance(name, str) else fallback,
        title=str(data.get("title") or ""),
        scenario=str(data.get("scenario") or ""),
        description=str(data.get("description") or ""),
        problem=None if good else "its `name` is missing or not a lowercase identifier",
        auto_approve=_auto_approve(data),
        retries=_retries(data),
        pool=_pool(data),
        ops=read_operations(data),
    )


def _auto_approve(data: dict[str, Any]) -> bool:
    """approval.auto_approve as the model reads it (StrictBool): only YAML true is true."""
    approval = data.get("approval")
    return isinstance(approval, dict) and approval.get("auto_approve") is True


def _retries(data: dict[str, Any]) -> Retries:
    """The block if every key of it is known and a whole number within its limits (as the
    model would take it); else the defaults, and plan_check says what is wrong."""
    block = data.get("retries") or {}
    if not isinstance(block, dict) or set(block) - {*Retries.LIMITS, "timeouts"}:
        return Retries()
    block = {k: v for k, v in block.items() if k != "timeouts"}  # (plan.operations reads it)
    for key, value in block.items():
        low, high = Retries.LIMITS[key]
        if type(value) is not int or not low <= value <= high:
            return Retries()
    return Retries(**block)


def _pool(data: dict[str, Any]) -> str | None:
    mapping = data.get("mapping")
    pool = mapping.get("pool") if isinstance(mapping, dict) else None
    return pool if isinstance(pool, str) and pool else None


def discover(directory: Path) -> list[PlanHeader]:
    """Every plan in ``directory`` (``*.yaml``), sorted by file name."""
    return [read_header(p) for p in sorted(directory.glob("*.yaml"))]
