"""A destination object from the plan's destination entry and its connection."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from retirement.errors import TransferError

if TYPE_CHECKING:
    from retirement.connect.info import ConnectionInfo
    from retirement.destinations.base import Destination
    from retirement.plan.model import Destination as DestinationSpec


def destination_from(
    name: str, spec: DestinationSpec, conn: ConnectionInfo | None, *, output_dir: Path
) -> Destination:
    """``local`` paths are relative to the output directory unless absolute."""
    if spec.kind == "local":
        from retirement.destinations.local import LocalDestination

        path = Path(spec.path or name)
        return LocalDestination(name, path if path.is_absolute() else output_dir / path)
    if conn is None:
        raise TransferError(f"destination {name} ({spec.kind}) names no connection")
    if spec.kind == "sftp":
        from retirement.destinations.sftp import SftpDestination

        return SftpDestination.from_connection(name, conn, path=spec.path)
    if not spec.bucket:
        raise TransferError(f"destination {name} (s3) names no bucket")
    from retirement.destinations.s3 import S3Destination

    return S3Destination.from_connection(name, conn, bucket=spec.bucket, prefix=spec.prefix)
