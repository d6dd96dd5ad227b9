"""Open a plan's source from its Airflow connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retirement_glue.connections import get_connection

if TYPE_CHECKING:
    from retirement.plan import Source as SourceSpec
    from retirement.sources.base import Source

_DRIVERS = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def open_source(spec: SourceSpec) -> Source:
    from retirement.sources.build import build_source

    conn = get_connection(spec.connection, purpose=f"source {spec.name} ({spec.kind})")
    if spec.kind in _DRIVERS:
        from sqlalchemy.engine import URL

        url = URL.create(
            _DRIVERS[spec.kind],
            username=conn.login,
            password=conn.password or None,
            host=conn.host,
            port=conn.port,
            database=conn.schema,
        )
        return build_source(spec, url=url.render_as_string(hide_password=False))
    if spec.kind == "sqlite":
        return build_source(spec, url=f"sqlite:///{conn.host}")
    if spec.kind == "files":
        return build_source(spec, root=conn.extra_dejson.get("path") or conn.host)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return build_source(spec, s3_client=S3Hook(aws_conn_id=spec.connection).get_conn())
