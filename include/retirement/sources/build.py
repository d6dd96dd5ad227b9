"""Build a Source from a plan's source spec and what the caller resolved from its connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement.errors import SourceError
from retirement.sources.files import FileSource
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.connect.info import ConnectionInfo
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


def build_source(
    spec: SourceSpec, *, url: str | None = None, root: str | None = None, s3_client: Any = None
) -> Source:
    """A SQL source needs ``url``, a files source ``root``, an S3 source ``s3_client``."""
    common = {"include": spec.include, "exclude": spec.exclude}
    if spec.kind in ("postgres", "mysql", "sqlite"):
        if not url:
            raise SourceError(
                f"source {spec.name}: connection {spec.connection} gave no database URL"
            )
        return SqlSource(spec.name, url, schema=spec.schema_name, **common)
    if spec.kind == "files":
        if not root:
            raise SourceError(
                f"source {spec.name}: connection {spec.connection} has no path "
                '(an fs connection with extra {"path": "/data/exports"})'
            )
        return FileSource(spec.name, root, **common)
    if s3_client is None or not spec.bucket:
        raise SourceError(
            f"source {spec.name}: an s3 source needs a bucket in the plan and an "
            f"aws connection ({spec.connection})"
        )
    return S3Source(spec.name, s3_client, spec.bucket, spec.prefix or "", **common)


def source_from_connection(
    spec: SourceSpec, conn: ConnectionInfo, s3_client: Callable[[ConnectionInfo], Any] | None = None
) -> Source:
    """Open ``spec`` with its resolved connection; ``s3_client`` builds a boto3 client."""
    if spec.kind in ("postgres", "mysql", "sqlite"):
        return build_source(spec, url=conn.sqlalchemy_url())
    if spec.kind == "files":
        return build_source(spec, root=conn.folder())
    if s3_client is None:
        raise SourceError(f"source {spec.name}: no S3 client factory for connection {conn.conn_id}")
    return build_source(spec, s3_client=s3_client(conn))
