"""The one context every phase function takes first: ``fn(ctx, ...)``.

Built once per task (the Airflow glue builds it from the task's context and connections; the
CLI and the tests build it from what they hold): the run's plan as plan_check checked it,
the ledger, the run's id, who acts, the run's logical time as a ``datetime``, a clock for
the real time of what happens now, the key store, where the output goes, and connectors that
turn a plan's source and destination specs into open sources and destinations. A value every
phase needs is a field here, not a parameter of every function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.destinations.base import Destination
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Destination as DestinationSpec
    from retirement.plan.model import Plan
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


class Connectors(Protocol):
    """Turns a plan's specs into open clients (from Airflow connections, in the glue)."""

    def source(self, spec: SourceSpec) -> Source: ...

    def destination(self, name: str, spec: DestinationSpec) -> Destination: ...

    def connection(self, conn_id: str, purpose: str) -> ConnectionInfo: ...


class Layout:
    """Where a run's output goes under ``root`` (a path every worker shares; given as a
    function, it is asked for only when a phase writes something)."""

    def __init__(self, root: Path | Callable[[], Path]) -> None:
        self._root = root

    @cached_property
    def root(self) -> Path:
        return self._root() if callable(self._root) else self._root

    @property
    def vault(self) -> Path:
        return self.root / "vault"

    def inventory(self, run_id: str) -> Path:
        return self.root / "inventory" / safe_dir(run_id)

    def evidence(self, run_id: str) -> Path:
        return self.root / "evidence" / safe_dir(run_id)

    def certificates(self, run_id: str) -> Path:
        return self.root / "certificates" / safe_dir(run_id)

    def preview(self, run_id: str) -> Path:
        return self.root / "preview" / safe_dir(run_id)


def utc_now() -> datetime:
    """The real time, timezone-aware UTC (the default clock of a RunContext)."""
    return datetime.now(UTC)


def safe_dir(run_id: str) -> str:
    """A run id as one folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def ledger_run_id(dag_id: str, airflow_run_id: str) -> str:
    """The ledger's id for one DAG run: stable across task retries and re-runs."""
    return f"{dag_id}:{airflow_run_id}"


@dataclass(frozen=True)
class RunContext:
    """Everything a phase needs about its run (see the module's doc)."""

    plan_path: str
    ledger: Ledger
    run_id: str
    actor: str
    now: datetime  # the run's logical time (timezone-aware): keys derive from it, never now()
    keys: Callable[[], KeyStore]  # opened on first use (a task may need no key)
    layout: Layout
    connectors: Connectors
    # The real time of what happens now (aware UTC): recorded as when something happened
    # (a manifest written, an auto-approval, a dossier sealed), never used in a key or a
    # name. Certificates take their times from the ledger's events instead, so a re-issued
    # one is the same. Tests inject a clock.
    clock: Callable[[], datetime] = utc_now
    _keys: list[KeyStore] = field(default_factory=list, repr=False, compare=False)

    @cached_property
    def plan(self) -> Plan:
        """The plan this run was checked with (kept in the ledger), never the file as it is
        now: an edit while the run waits changes nothing in it."""
        from retirement.phases.pinned import run_plan

        return run_plan(self.ledger, self.run_id, self.plan_path)

    @property
    def key_store(self) -> KeyStore:
        if not self._keys:
            self._keys.append(self.keys())
        return self._keys[0]

    @property
    def stamp(self) -> str:
        """The logical time as text (the run's trigger time: for reports named by run)."""
        return self.now.isoformat()

    def clock_stamp(self) -> str:
        """The real time now, as recorded (UTC, ISO 8601 with microseconds)."""
        return self.clock().astimezone(UTC).isoformat(timespec="microseconds")

    @property
    def today(self) -> date:
        return self.now.astimezone(UTC).date()

    def source(self, name: str) -> Source:
        """Source ``name`` of the run's plan, opened (close it: ``with ctx.source(n) as s``)."""
        return self.connectors.source(self.plan.source(name))

    def destination(self, name: str) -> Destination:
        """Destination ``name`` of the run's plan, opened."""
        return self.connectors.destination(name, self.plan.destinations[name])
