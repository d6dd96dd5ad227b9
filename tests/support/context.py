"""A RunContext for tests: the ledger, keys and folders they made, sources and destinations
they open themselves (no Airflow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.phases.context import Layout, RunContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.destinations.base import Destination
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Destination as DestinationSpec
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


@dataclass
class StaticConnectors:
    """Sources by name (a function opening it), destinations by name (likewise: local
    folders unless given), connection details by id."""

    sources: dict[str, Callable[[], Source]]
    output_dir: Path
    destinations: dict[str, Callable[[], Destination]] = field(default_factory=dict)
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)

    def source(self, spec: SourceSpec) -> Source:
        return self.sources[spec.name]()

    def destination(self, name: str, spec: DestinationSpec) -> Destination:
        if name in self.destinations:
            return self.destinations[name]()
        from retirement.destinations.build import destination_from

        return destination_from(name, spec, None, output_dir=self.output_dir)

    def connection(self, conn_id: str, purpose: str) -> ConnectionInfo:
        return self.connections[conn_id]


def context(
    plan_path: str | Path,
    ledger: Ledger,
    keys: KeyStore | None,
    out: Path,
    sources: dict[str, Callable[[], Source]],
    *,
    run_id: str = "r",
    actor: str = "t",
    now: str = "2026-11-23T08:00:00+00:00",
    clock: Callable[[], datetime] | None = None,
    **connectors: Any,
) -> RunContext:
    more = {"clock": clock} if clock is not None else {}
    return RunContext(
        plan_path=str(plan_path),
        ledger=ledger,
        run_id=run_id,
        actor=actor,
        now=datetime.fromisoformat(now),
        keys=lambda: _need(keys),
        layout=Layout(out),
        connectors=StaticConnectors(sources, out, **connectors),
        **more,
    )


def _need(keys: KeyStore | None) -> KeyStore:
    if keys is None:
        raise AssertionError("this test's context has no key store")
    return keys
