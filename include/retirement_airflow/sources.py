"""Open a plan's source from its Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retirement_airflow.connections import connection_info

if TYPE_CHECKING:
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


def _s3_client(conn):  # noqa: ANN001, ANN202 (a boto3 client, built by the provider's hook)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn.conn_id).get_conn()


def open_source(spec: SourceSpec) -> Source:
    from retirement.sources.build import source_from_connection

    conn = connection_info(spec.connection, purpose=f"source {spec.name} ({spec.kind})")
    return source_from_connection(spec, conn, _s3_client)
