"""Airflow connections turned into open sources, destinations and connection details: the
``Connectors`` a task's RunContext uses. Built at run time, never at parse time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement_airflow.connections import connection_info

if TYPE_CHECKING:
    from retirement.connect.info import ConnectionInfo
    from retirement.destinations.base import Destination
    from retirement.phases.context import Layout
    from retirement.plan.model import Destination as DestinationSpec
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


def _s3_client(conn: ConnectionInfo) -> Any:  # a boto3 client, built by the provider's hook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn.conn_id).get_conn()


class AirflowConnectors:
    """Sources and destinations from the Airflow connections the plan names."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout  # local destinations are relative to its root

    def source(self, spec: SourceSpec) -> Source:
        from retirement.sources.build import source_from_connection

        conn = connection_info(spec.connection, purpose=f"source {spec.name} ({spec.kind})")
        return source_from_connection(spec, conn, _s3_client)

    def destination(self, name: str, spec: DestinationSpec) -> Destination:
        from retirement.destinations.build import destination_from

        conn = (
            connection_info(spec.connection, purpose=f"destination {name} ({spec.kind})")
            if spec.connection
            else None
        )
        return destination_from(name, spec, conn, output_dir=self.layout.root)

    def connection(self, conn_id: str, purpose: str) -> ConnectionInfo:
        return connection_info(conn_id, purpose=purpose)
