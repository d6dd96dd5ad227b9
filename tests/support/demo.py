"""A demo run for the phase tests: the demo CRM (SQLite) checked, inventoried and gated as
run "r" into a real ledger, with local destinations, and each phase one call away."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.destinations.local import LocalDestination
from retirement.ledger.core import Ledger
from retirement.phases.backup import backup_dataset
from retirement.phases.delete import deletion_request, record_decision
from retirement.phases.gate_backup import gate_backup
from retirement.phases.gate_deletion import gate_deletion
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.gate_transfer import gate_transfer
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from retirement.phases.transfer import required_deliveries, transfer_dataset
from retirement.sources.sql import SqlSource
from tests.support.context import context

if TYPE_CHECKING:
    from retirement.connect.info import ConnectionInfo
    from retirement.phases.context import RunContext

PLAN = str(Path(__file__).resolve().parents[2] / "include" / "plans" / "demo.yaml")
NOW = "2026-11-23T08:00:00+00:00"
CRM = ("crm.customers", "crm.invoices", "crm.orders")
DESTINATIONS = ("archive", "successor_drop")


@dataclass
class DemoRun:
    """The demo CRM as run "r" of the demo plan (only the crm source is opened)."""

    tmp: Path
    ledger: Ledger
    keys: KeyStore
    db: Path
    plan: str = PLAN
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)  # by connection id

    @property
    def vault(self) -> Path:
        return self.tmp / "out" / "vault"

    @property
    def dest(self) -> Path:
        return self.tmp / "dest"

    def source(self, **options: Any) -> SqlSource:
        return SqlSource("crm", f"sqlite:///{self.db}", **options)

    def ctx(self, now: str = NOW, **options: Any) -> RunContext:
        """The run's context (at logical time ``now``)."""
        dests = {n: (lambda n=n: LocalDestination(n, self.dest / n)) for n in DESTINATIONS}
        return context(
            self.plan,
            self.ledger,
            self.keys,
            self.tmp / "out",
            {"crm": lambda: self.source(**options)},
            now=now,
            destinations=dests,
            connections=self.connections,
        )

    # the phases, as the DAG's tasks run them
    def backup(self, dataset: str = "crm.customers") -> dict[str, Any]:
        with self.source() as source:
            return backup_dataset(self.ctx(), dataset, source)

    def backup_all(self) -> None:
        for state in self.ledger.dataset_states("r"):
            self.backup(state.dataset)

    def gate_backup(self) -> dict[str, Any]:
        return gate_backup(self.ctx())

    def transfer_all(self) -> list[dict[str, Any]]:
        ctx = self.ctx()
        done = []
        for need in required_deliveries(ctx):
            with ctx.destination(need["destination"]) as dest:
                done.append(transfer_dataset(ctx, need["dataset"], need["destination"], dest))
        return done

    def gate_transfer(self) -> dict[str, Any]:
        return gate_transfer(self.ctx())

    def delivered(self) -> None:
        """Everything backed up, restore-verified, delivered and gated."""
        self.backup_all()
        self.gate_backup()
        self.transfer_all()
        self.gate_transfer()

    def request(self) -> dict[str, Any]:
        return deletion_request(self.ctx())

    def decide(self, *, approved: bool = True, by: str = "alice") -> None:
        record_decision(self.ctx(), approved=approved, by=by, at=NOW)

    def approved(self, by: str = "alice") -> None:
        """Delivered, the deletion requested and approved by ``by``."""
        self.delivered()
        self.request()
        self.decide(by=by)

    def delete(self, dataset: str, **options: Any) -> dict[str, Any]:
        from retirement.phases.delete import delete_dataset

        ctx = self.ctx()
        with self.source() as source:
            return delete_dataset(ctx, dataset, source, destination_for=ctx.destination, **options)

    def gate_deletion(self) -> dict[str, Any]:
        return gate_deletion(self.ctx(include=["customers", "invoices", "orders"]))

    def count(self, table: str) -> int:
        import sqlite3

        with sqlite3.connect(self.db) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def demo_run(
    tmp: Path,
    *,
    customers: int = 30,
    plan: str = PLAN,
    connections: dict[str, ConnectionInfo] | None = None,
) -> DemoRun:
    generate(tmp / "src", customers=customers)
    ledger = Ledger.open(f"sqlite:///{tmp / 'ledger.sqlite'}")
    keys = KeyStore(tmp / "keys", KeyStore.new_master_key(tmp / "keys" / "m.key"))
    demo = DemoRun(tmp, ledger, keys, tmp / "src" / "crm.sqlite", plan, connections or {})
    ctx = demo.ctx()
    check_plan(ctx)
    inventory_source(ctx, "crm")
    gate_inventory(ctx)
    return demo
