"""Deleting a table with a key: by key in batches of ``BATCH``, each deleted row compared
with its backed-up line in the same transaction (the scheme: ``deletion.tables``)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.deletion.rows import backup_records, pg_columns, pg_copy_lines
from retirement.errors import DeletionRefused
from retirement.formats.csv import csv_line, fields
from retirement.sources.keys import pg_types, python_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.sql import SqlSource


BATCH = 5_000


def _key_of(record: bytes, index: list[int]) -> tuple[tuple[str | None, bool], ...]:
    parts = fields(record)
    return tuple(parts[i] for i in index)


def _batches(items: Iterator[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _masked(key: tuple[tuple[str | None, bool], ...], secret: bool) -> str:
    shown = "/".join("NULL" if v is None else v for v, _ in key)
    return ("…" + shown[-4:]) if secret else shown


def delete_by_key(
    source: SqlSource,
    dataset: DatasetId,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    *,
    secret_key: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Delete the backed-up rows of a keyed table, batch by batch; return how many went."""
    table = source.table(dataset)
    columns = tuple(manifest.fingerprint.key_columns)
    names = [c["name"] for c in manifest.columns]
    index = [names.index(k) for k in columns]
    deleted = 0
    rows = (
        (_key_of(r, index), hashlib.sha256(r).digest())
        for r in backup_records(manifest, cipher, identities)
    )
    for batch in _batches(rows, BATCH):
        with source.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                deleted += _pg_batch(conn, table, columns, batch, manifest, secret_key)
            else:
                deleted += _locked_batch(
                    source, dataset, conn, table, columns, index, batch, manifest, secret_key
                )
        if on_rows:
            on_rows(len(batch))
    return deleted


def _refuse_changed(manifest: Manifest, keys: list[Any], why: str, secret: bool) -> DeletionRefused:
    shown = ", ".join(_masked(k, secret) for k in keys[:5])
    return DeletionRefused(
        f"{manifest.dataset}: {len(keys)} row(s) {why} (key {shown}"
        f"{', …' if len(keys) > 5 else ''}); this batch was rolled back, nothing of it was "
        "deleted. Re-run backup (a new version), its gate and the transfer"
    )


def _pg_batch(
    conn: sa.Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    batch: list[tuple[Any, bytes]],
    manifest: Manifest,
    secret: bool,
) -> int:
    prep = conn.dialect.identifier_preparer
    types = pg_types(conn, table, columns)
    if len(columns) == 1:
        cond = f"{prep.quote(columns[0])} = ANY(CAST(%s AS {types[0]}[]))"
    else:
        casts = ", ".join(f"CAST(%s AS {t}[])" for t in types)
        cond = f"({', '.join(prep.quote(c) for c in columns)}) IN (SELECT * FROM unnest({casts}))"
    params = [[k[i][0] for k, _ in batch] for i in range(len(columns))]
    query = (
        f"DELETE FROM {prep.format_table(table)} WHERE {cond} RETURNING {pg_columns(conn, table)}"
    )
    wanted = {k: sha for k, sha in batch}
    index = [[c.name for c in table.columns].index(k) for k in columns]
    seen: set[Any] = set()
    changed: list[Any] = []
    count = 0
    for line in pg_copy_lines(conn, query, params):  # COPY quotes every value, both times
        key = _key_of(line, index)
        count += 1
        if key in seen or wanted.get(key) != hashlib.sha256(line).digest():
            changed.append(key)
        seen.add(key)
    if changed:
        raise _refuse_changed(
            manifest, changed, "of the backup changed at the source since it was made", secret
        )
    return count


def _locked_batch(
    source: SqlSource,
    dataset: DatasetId,
    conn: sa.Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    index: list[int],
    batch: list[tuple[Any, bytes]],
    manifest: Manifest,
    secret: bool,
) -> int:
    dialect = conn.dialect.name
    cols = [sa.type_coerce(table.c[c], sa.types.NullType()) for c in columns]

    def typed(key: tuple[tuple[str | None, bool], ...]) -> tuple[Any, ...]:
        return tuple(
            python_value(dialect, table.c[c], v, q) for c, (v, q) in zip(columns, key, strict=True)
        )

    keys = [typed(k) for k, _ in batch]
    where = cols[0].in_([k[0] for k in keys]) if len(cols) == 1 else sa.tuple_(*cols).in_(keys)
    if dialect == "sqlite":
        conn.exec_driver_sql("SELECT 1")  # the transaction's snapshot; the write lock below
    else:
        conn.execute(
            sa.select(sa.literal(1)).select_from(table).where(where).with_for_update()
        ).all()
    now: dict[tuple[Any, ...], list[bytes]] = {}
    for row in conn.execute(source.selectable(dataset).where(where)):
        line = csv_line(row)
        now.setdefault(typed(_key_of(line, index)), []).append(hashlib.sha256(line).digest())
    changed = [
        k
        for (k, sha), t in zip(batch, keys, strict=True)
        if t in now and (len(now[t]) > 1 or now[t][0] != sha)
    ]
    if changed:
        raise _refuse_changed(
            manifest,
            changed,
            "of the backup changed at the source since it was made, or share their key",
            secret,
        )
    present = [t for t in keys if t in now]
    if not present:
        return 0
    gone_where = (
        cols[0].in_([k[0] for k in present]) if len(cols) == 1 else sa.tuple_(*cols).in_(present)
    )
    gone = conn.execute(sa.delete(table).where(gone_where)).rowcount
    if gone != len(present):
        raise DeletionRefused(
            f"{manifest.dataset}: deleting {len(present)} backed-up row(s) by key would have "
            f"removed {gone}: the key does not identify rows uniquely at the source; the batch "
            "was rolled back. Give the plan a key that is unique"
        )
    return gone
