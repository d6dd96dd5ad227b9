"""Scoped deletion at the source, and what proves it worked.

Scope: exactly the rows of the verified backup. For a table with a key, the key values are
read back from the backup itself (decrypted in a stream) and deleted in batches of
``BATCH`` keys, one short transaction each, so rows added after the backup are never
touched and a re-run after a crash carries on (deleting an absent key is a no-op). A table
without a key is deleted whole, and only when its current fingerprint equals the backup's.
Then ``VACUUM`` (PostgreSQL, SQLite) or ``OPTIMIZE TABLE`` (MySQL) so dead rows do not keep
the data. Files are unlinked ('clear' on SSDs and copy-on-write filesystems, and the
certificate says so); S3 objects lose every version and delete marker.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.backup import csv_records
from retirement.errors import DeletionRefused
from retirement.restore import _decrypted_chunks, _lines
from retirement.restore_db import parse_record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from retirement.manifest import Manifest
    from retirement.sources.base import Source

log = logging.getLogger(__name__)

BATCH = 5_000


@dataclass(frozen=True)
class DeletionResult:
    method: str  # NIST SP 800-88 category: clear / purge / cryptographic erase
    technique: str
    deleted: int  # rows (or objects / files) deleted by this run
    scoped_left: int  # rows of the scope still at the source afterwards
    remaining: int  # rows left in the dataset (added after the backup, out of scope)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def backed_up_rows(
    manifest: Manifest, cipher: Path, identities: list[Any]
) -> Iterator[tuple[tuple[str | None, ...], bytes]]:
    """(key values, SHA-256 of the CSV line) of every row in the backup, streamed."""
    names = [c["name"] for c in manifest.columns]
    index = [names.index(k) for k in manifest.fingerprint.key_columns]

    records = csv_records(_lines(_decrypted_chunks(cipher, identities), hashlib.sha256(), [0]))
    next(records, None)  # header
    for record in records:
        fields = parse_record(record)
        yield tuple(fields[i] for i in index), hashlib.sha256(record).digest()


def backed_up_keys(
    manifest: Manifest, cipher: Path, identities: list[Any]
) -> Iterator[tuple[str | None, ...]]:
    """The key values of every row in the backup, streamed from the decrypted CSV."""
    for key, _ in backed_up_rows(manifest, cipher, identities):
        yield key


def _pg_copy_lines(
    conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], typed: list[tuple]
) -> Iterator[bytes]:
    """The rows of the batch exactly as the backup's COPY wrote them (same statement form,
    keys bound as typed arrays so the primary key index is used)."""
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c.name) for c in table.columns)
    if len(columns) == 1:
        cond = f"{prep.quote(columns[0])} = ANY(%s)"
    else:
        keys = ", ".join(prep.quote(c) for c in columns)
        cond = f"({keys}) IN (SELECT * FROM unnest({', '.join(['%s'] * len(columns))}))"
    params = [list(values) for values in zip(*typed, strict=True)]
    sql = (
        f"COPY (SELECT {names} FROM {prep.format_table(table)} WHERE {cond}) "
        "TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
    )
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
        for record in copy:
            yield bytes(record)


def _current_lines(
    conn: sa.Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    typed: list[tuple],
    index: list[int],
) -> dict[tuple[str | None, ...], bytes]:
    """The batch's rows as they are now, locked (FOR UPDATE where the database has it), in
    the backup's line format: key values -> SHA-256 of the line."""
    from retirement.backup import csv_line

    where = _where(table, columns, typed)
    lock = sa.select(sa.literal(1)).select_from(table).where(where)
    if conn.dialect.name != "sqlite":
        conn.execute(lock.with_for_update()).all()
    if conn.dialect.name == "postgresql":
        lines = _pg_copy_lines(conn, table, columns, typed)
    else:
        lines = (csv_line(row) for row in conn.execute(sa.select(table).where(where)))
    out = {}
    for line in lines:
        fields = parse_record(line)
        out[tuple(fields[i] for i in index)] = hashlib.sha256(line).digest()
    return out


def _batches(keys: Iterator[tuple], size: int = BATCH) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _typed(table: sa.Table, columns: tuple[str, ...], key: tuple) -> tuple:
    out = []
    for name, value in zip(columns, key, strict=True):
        try:
            python_type = table.c[name].type.python_type
        except NotImplementedError:
            python_type = str
        out.append(
            python_type(value) if python_type in (int, float) and value is not None else value
        )
    return tuple(out)


def _where(table: sa.Table, columns: tuple[str, ...], batch: list[tuple]) -> Any:
    if len(columns) == 1:
        return table.c[columns[0]].in_([k[0] for k in batch])
    return sa.tuple_(*(table.c[c] for c in columns)).in_(batch)


def delete_sql_rows(
    source: Any,
    dataset: str,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    *,
    on_rows: Callable[[int], None] | None = None,
) -> DeletionResult:
    """Delete the backed-up rows of one table by key, in batches; then reclaim the space."""
    table = source._table(dataset)  # noqa: SLF001 (the reflected table)
    columns = tuple(manifest.fingerprint.key_columns)
    engine: sa.Engine = source.engine
    deleted = 0
    if columns:
        names = [c["name"] for c in manifest.columns]
        index = [names.index(k) for k in columns]
        for batch in _batches(backed_up_rows(manifest, cipher, identities)):
            with engine.begin() as conn:
                typed = [_typed(table, columns, k) for k, _ in batch]
                now = _current_lines(conn, table, columns, typed, index)
                changed = [k for k, sha in batch if k in now and now[k] != sha]
                if changed:
                    shown = ", ".join("/".join(str(v) for v in k) for k in changed[:5])
                    raise DeletionRefused(
                        f"{manifest.dataset}: {len(changed)} row(s) of the backup changed at "
                        f"the source since {manifest.created_at} (key {shown}"
                        f"{', …' if len(changed) > 5 else ''}); this batch was not deleted. "
                        "Re-run backup (a new version), its gate and the transfer"
                    )
                present = [_typed(table, columns, k) for k, _ in batch if k in now]
                if present:
                    deleted += conn.execute(
                        sa.delete(table).where(_where(table, columns, present))
                    ).rowcount
            if on_rows:
                on_rows(len(batch))
        technique = (
            f"DELETE by key ({', '.join(columns)}) in batches of {BATCH}, each row locked and "
            "compared with its backed-up copy first"
        )
    else:
        with engine.begin() as conn:
            deleted = conn.execute(sa.delete(table)).rowcount
        technique = "DELETE of the whole table (no key; its fingerprint equalled the backup's)"
    technique += "; " + _reclaim(engine, table)
    left = scoped_count(source, dataset, manifest, cipher, identities)
    remaining = source.count(dataset)
    return DeletionResult("clear", technique, deleted, left, remaining)


def drop_table(source: Any, dataset: str, result: DeletionResult) -> DeletionResult:
    """DROP the table once nothing is left in it; rows added after the backup keep it."""
    from dataclasses import replace

    table = source._table(dataset)  # noqa: SLF001
    if result.remaining:
        raise DeletionRefused(
            f"{source.name}.{dataset}: the plan retires the table (drop_table), but "
            f"{result.remaining} rows that are not in the backup are still in it: back them "
            "up in a new run first; nothing was dropped"
        )
    with source.engine.begin() as conn:
        table.drop(conn)
    source._tables.pop(dataset, None)  # noqa: SLF001
    name = source.engine.dialect.identifier_preparer.format_table(table)
    return replace(result, technique=f"{result.technique}; DROP TABLE {name}")


def scoped_count(
    source: Any, dataset: str, manifest: Manifest, cipher: Path, identities: list[Any]
) -> int:
    """How many rows of the backup's scope are still at the source."""
    table = source._table(dataset)  # noqa: SLF001
    columns = tuple(manifest.fingerprint.key_columns)
    if not columns:
        return source.count(dataset)
    left = 0
    with source.engine.connect() as conn:
        for batch in _batches(backed_up_keys(manifest, cipher, identities)):
            typed = [_typed(table, columns, k) for k in batch]
            query = (
                sa.select(sa.func.count()).select_from(table).where(_where(table, columns, typed))
            )
            left += int(conn.execute(query).scalar_one())
    return left


def _reclaim(engine: sa.Engine, table: sa.Table) -> str:
    """Make the deleted rows' space reusable so the data does not linger in dead tuples."""
    name = engine.dialect.identifier_preparer.format_table(table)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"VACUUM {name}")
            return f"VACUUM {name}"
        if engine.dialect.name == "mysql":
            conn.exec_driver_sql(f"OPTIMIZE TABLE {name}")
            return f"OPTIMIZE TABLE {name}"
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            return "VACUUM (SQLite rewrites the whole database file)"
    return "no space reclamation for this database"


def delete_file(source: Any, dataset: str, manifest: Manifest) -> DeletionResult:
    """Unlink a file whose content is exactly the backed-up one."""
    path: Path = source.root / source.id_of(dataset).object
    if not path.exists():
        return DeletionResult("clear", "unlink (already gone: a re-run)", 0, 0, 0)
    path.unlink()
    return DeletionResult(
        "clear",
        "unlink",
        1,
        0,
        0,
        note=(
            "Unlinking is 'clear', not 'purge': on SSDs and copy-on-write filesystems the "
            "blocks may survive until reused; the backup copy is what gets a cryptographic erase"
        ),
    )


def delete_s3_object(source: Any, dataset: str) -> DeletionResult:
    """Delete every version and delete marker of one object."""
    key = f"{source.prefix}{source.id_of(dataset).object}"
    client, bucket = source.client, source.bucket
    deleted = 0
    listing = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
    for page in listing:
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if entry["Key"] != key:
                continue
            client.delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
            deleted += 1
    return DeletionResult("clear", "DeleteObject of every version and delete marker", deleted, 0, 0)


def check_unchanged(source: Source, dataset: str, kind: str, manifest: Manifest) -> None:
    """Refuse unless the source's fingerprint now equals the one backed up."""
    from retirement.backup import fingerprint_now

    now = fingerprint_now(source, dataset, kind, manifest.fingerprint.key_columns)
    before = manifest.fingerprint
    if (now.rows, now.row_digest) != (before.rows, before.row_digest):
        change = (
            f"{now.rows - before.rows:+d} rows"
            if now.rows != before.rows
            else "the same number of rows, but some changed"
        )
        raise DeletionRefused(
            f"{manifest.dataset}: the source changed since the backup of {manifest.created_at} "
            f"({before.rows} rows then, {now.rows} now: {change}; row digest "
            f"{before.row_digest[:12]}… then, {now.row_digest[:12]}… now). Nothing was "
            "deleted: re-run backup (it makes a new version), its gate and the transfer"
        )
