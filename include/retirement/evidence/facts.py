"""Facts a certificate of sanitization states beyond what the deletion recorded: where the
data was (host, database, path; never a password or a user name) and how many individuals
it was about (the distinct customer keys of the backup, as the plan names the columns)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from retirement.crypto.age import decrypted_chunks
from retirement.formats.csv import parse_record, stream_records
from retirement.sources.files import FileSource
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Source


def location(source: Source, dataset: DatasetId) -> dict[str, Any]:
    """Where ``dataset`` was: a database's host, port, database, schema and table; a folder's
    path; a bucket's endpoint, bucket and key. Credentials are never part of it."""
    if isinstance(source, SqlSource):
        return {**source.location(), "table": dataset.local}
    if isinstance(source, FileSource):
        # the path as the dataset prints it (a byte that is not UTF-8 as %XX, a sheet after #)
        root = str(source.root).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return {"engine": "files", "path": f"{root}/{dataset.local}"}
    if isinstance(source, S3Source):
        endpoint = getattr(getattr(source.client, "meta", None), "endpoint_url", None)
        return {
            "engine": "s3",
            "endpoint": endpoint,
            "bucket": source.bucket,
            "key": source.prefix + dataset.local,
        }
    return {"engine": type(source).__name__}


def count_individuals(
    manifest: Manifest, cipher: Path, identities: list[Any], columns: tuple[str, ...]
) -> dict[str, Any]:
    """The number of distinct values of ``columns`` over the backup's rows (streamed; one
    16-byte digest kept per individual), or why it cannot be counted."""
    basis = {"key_columns": list(columns)}
    if manifest.format != "csv":
        return {"count": None, **basis, "note": "not a table: no customer key to count"}
    records = stream_records(decrypted_chunks(cipher, identities))
    header = parse_record(next(records, b""))
    missing = [c for c in columns if c not in header]
    if missing:
        return {"count": None, **basis, "note": f"no column {', '.join(missing)} in the backup"}
    where = [header.index(c) for c in columns]
    seen: set[bytes] = set()
    for record in records:
        values = parse_record(record)
        key = [values[i] for i in where]
        if all(v is None for v in key):
            continue  # a row naming no customer
        seen.add(hashlib.sha256(repr(key).encode()).digest()[:16])
    return {"count": len(seen), **basis}
