"""Open a plan's destination from its Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retirement_airflow.connections import connection_info, output_dir

if TYPE_CHECKING:
    from retirement.destinations.base import Destination
    from retirement.plan.model import Plan


def open_destination(plan: Plan, name: str) -> Destination:
    """Destination ``name`` of ``plan`` (a run's pinned plan), from its Airflow connection."""
    from retirement.destinations.build import destination_from

    spec = plan.destinations[name]
    conn = (
        connection_info(spec.connection, purpose=f"destination {name} ({spec.kind})")
        if spec.connection
        else None
    )
    return destination_from(name, spec, conn, output_dir=output_dir())
