"""A boto3 S3 client from a ConnectionInfo (for the CLI; the DAG layer uses S3Hook).

TLS verification stays on: ``extra.verify`` may name a CA bundle, never disable it.
Checksums are computed only when required, so endpoints without flexible checksums
(Ceph RadosGW, older MinIO) work; our own SHA-256 digests are kept in the manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement.errors import SourceError

if TYPE_CHECKING:
    from retirement.connect.info import ConnectionInfo


def s3_client(conn: ConnectionInfo) -> Any:
    import boto3
    from botocore.config import Config

    verify = conn.extra.get("verify", conn.extra.get("ca_bundle", True))
    if verify is False or str(verify).lower() == "false":
        raise SourceError(
            f"connection {conn.conn_id}: TLS verification cannot be switched off; "
            "name a CA bundle in extra.verify instead"
        )
    settings: dict[str, Any] = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"max_attempts": int(conn.extra.get("max_attempts", 5)), "mode": "standard"},
        "connect_timeout": float(conn.extra.get("connect_timeout", 10)),
        "read_timeout": float(conn.extra.get("read_timeout", 60)),
        "s3": {"addressing_style": conn.extra.get("addressing_style", "path")},
        "max_pool_connections": 16,
    }
    settings.update(conn.extra.get("config_kwargs") or {})  # Airflow's aws connection extra
    config = Config(**settings)
    return boto3.client(
        "s3",
        endpoint_url=conn.extra.get("endpoint_url"),
        region_name=conn.extra.get("region_name", "us-east-1"),
        aws_access_key_id=conn.login or conn.extra.get("aws_access_key_id"),
        aws_secret_access_key=conn.password or conn.extra.get("aws_secret_access_key"),
        verify=verify if isinstance(verify, str) else True,
        config=config,
    )
