"""Open a plan's destination from its Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retirement_glue.connections import connection_info, output_dir

if TYPE_CHECKING:
    from retirement.destinations.base import Destination


def open_destination(plan_path: str, name: str) -> Destination:
    from retirement.destinations.build import destination_from
    from retirement.plan import load_plan

    spec = load_plan(plan_path).destinations[name]
    conn = (
        connection_info(spec.connection, purpose=f"destination {name} ({spec.kind})")
        if spec.connection
        else None
    )
    return destination_from(name, spec, conn, output_dir=output_dir())
