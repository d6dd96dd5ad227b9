"""Deleting a table with a key: by key in batches of ``BATCH``, each deleted row compared
with its backed-up line in the same transaction (the scheme: ``deletion.tables``)."""

from __future__ import annotations

import hashlib
import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.deletion import key_ranges
from retirement.deletion.key_literals import key_literals
from retirement.deletion.rows import pg_columns, pg_copy_lines
from retirement.errors import DeletionRefused
from retirement.formats.csv import csv_line, leading_fields
from retirement.formats.read_ahead import prefetched
from retirement.sources.keys import pg_types, python_value
from retirement.sources.mysql_export import line_sql

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.deletion.rows import Backup
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Named
    from retirement.sources.capabilities import RowDeleter


log = logging.getLogger(__name__)

BATCH = 5_000
RANGE_MISSES = 3  # batches whose key range held rows of no batch before ranges are not tried
RANGE_DIALECTS = ("postgresql", "mysql")


def _key_of(record: bytes, index: list[int]) -> tuple[tuple[str | None, bool], ...]:
    parts = leading_fields(record, max(index) + 1)
    return tuple(parts[i] for i in index)


# One CSV field as ``formats.csv.fields`` reads it: quoted (text, ``""`` for a quote) or bare.
_FIELD = rb'(?:"((?:[^"]++|"")*+)"|([^,"\n]*+))'


@lru_cache(maxsize=8)
def _leading(count: int) -> re.Pattern[bytes]:
    """The first ``count`` fields of a record, each ended by a comma or the record's end."""
    return re.compile(b",".join([_FIELD] * count) + rb"(?=,|\n?\Z)")


def _field(match: re.Match[bytes], i: int) -> tuple[str | None, bool]:
    quoted, bare = match.group(2 * i + 1, 2 * i + 2)
    if quoted is not None:
        return quoted.replace(b'""', b'"').decode("utf-8"), True
    return (bare.decode("utf-8") if bare else None), False


def _keyed(records: list[bytes], index: list[int]) -> list[tuple[Any, bytes]]:
    """Each record's key (as ``_key_of`` reads it) and the SHA-256 of its line."""
    sha256 = hashlib.sha256
    return [(_key_of_record(record, index), sha256(record).digest()) for record in records]


def _masked(key: tuple[tuple[str | None, bool], ...], secret: bool) -> str:
    shown = "/".join("NULL" if v is None else v for v, _ in key)
    return ("…" + shown[-4:]) if secret else shown


def delete_by_key(
    source: RowDeleter,
    dataset: Named,
    backup: Backup,
    secret_key: bool,
    on_rows: Callable[[int], None] | None,
) -> int:
    """Delete the backed-up rows of a keyed table, batch by batch; return how many went
    (``secret_key``: keys are shown masked in a refusal)."""
    manifest = backup.manifest
    table = source.table(dataset)
    columns = tuple(manifest.fingerprint.key_columns)
    names = [c["name"] for c in manifest.columns]
    index = [names.index(k) for k in columns]
    deleted = 0
    # Batches whose key range held other rows: after RANGE_MISSES, no more tries.
    misses = 0 if len(columns) == 1 and source.dialect in RANGE_DIALECTS else RANGE_MISSES
    # The next batch is decrypted and cut while the database deletes this one.
    for records in prefetched(lambda: backup.batches(BATCH), depth=1, name="backup-reader"):
        with source.begin() as conn:
            ranged = None
            if misses < RANGE_MISSES:
                if (why := key_ranges.not_for(conn, table)) is not None:
                    log.info("%s: batches go by their keys, not key ranges (%s)", table.name, why)
                    misses = RANGE_MISSES
                else:
                    ranged = _range_batch(conn, table, columns[0], index, records)
                    misses += ranged is None
            if ranged is not None:
                deleted += ranged
            elif conn.dialect.name == "postgresql":
                deleted += _pg_batch(conn, table, columns, index, records, manifest, secret_key)
            else:
                deleted += _locked_batch(
                    source, dataset, conn, table, columns, index, records, manifest, secret_key
                )
        if on_rows:
            on_rows(len(records))
    return deleted


def _range_batch(
    conn: sa.Connection, table: sa.Table, column: str, index: list[int], records: list[bytes]
) -> int | None:
    """The batch deleted by its key range (``deletion.key_ranges``), or None."""
    first, last = _key_of_record(records[0], index)[0], _key_of_record(records[-1], index)[0]
    if first[0] is None or last[0] is None:
        return None
    return key_ranges.range_batch(conn, table, column, (first[0], first[1]), last, records)


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
    index: list[int],
    records: list[bytes],
    manifest: Manifest,
    secret: bool,
) -> int:
    """Delete the batch's keys, the deleted rows returned in key order through COPY, and
    compare them with the batch's backed-up lines before the transaction commits.

    A key-order backup holds the batch's lines in the order PostgreSQL sorts their keys: the
    usual batch deletes exactly those rows, and the returned bytes equal the lines joined,
    one comparison in C. CSV records delimit themselves, so equal bytes are equal records one
    by one. Anything else (a row deleted by an earlier try, a backup in another order, a row
    that changed) is compared line by line (``_compare_lines``), which refuses a changed
    row."""
    prep = conn.dialect.identifier_preparer
    types = pg_types(conn, table, columns)
    block = b"".join(records)
    params = key_literals(block, len(records), len(table.columns), index)
    keys = [] if params is not None else [_key_of_record(record, index) for record in records]
    if len(columns) == 1:
        cond = f"{prep.quote(columns[0])} = ANY(CAST(%s AS {types[0]}[]))"
    else:
        casts = ", ".join(f"CAST(%s AS {t}[])" for t in types)
        cond = f"({', '.join(prep.quote(c) for c in columns)}) IN (SELECT * FROM unnest({casts}))"
    if params is None:
        params = [_array([k[i][0] for k in keys]) for i in range(len(columns))]
    order = ", ".join(prep.quote(c) for c in columns)
    query = (
        f"WITH gone AS (DELETE FROM {prep.format_table(table)} WHERE {cond} "
        f"RETURNING {pg_columns(conn, table)}) SELECT * FROM gone ORDER BY {order}"
    )
    lines = list(pg_copy_lines(conn, query, params))  # COPY quotes every value, both times
    if b"".join(lines) == block:
        return len(lines)
    keys = keys or [_key_of_record(record, index) for record in records]
    backed_up = [(k, hashlib.sha256(r).digest()) for k, r in zip(keys, records, strict=True)]
    at = [[c.name for c in table.columns].index(k) for k in columns]
    _compare_lines(lines, backed_up, at, manifest, secret)
    return len(lines)


def _key_of_record(record: bytes, index: list[int]) -> tuple[tuple[str | None, bool], ...]:
    match = _leading(max(index) + 1).match(record)
    if match is None:
        return _key_of(record, index)
    return tuple(_field(match, i) for i in index)


def _compare_lines(
    lines: list[bytes],
    batch: list[tuple[Any, bytes]],
    index: list[int],
    manifest: Manifest,
    secret: bool,
) -> None:
    """Refuse (the transaction rolls back) unless every deleted line is its key's backed-up
    line, once."""
    # Each key's backed-up line (the last, should the backup hold a key twice), found by its
    # SHA-256: a deleted line whose digest is one of these is that key's backed-up line (the
    # key is in the line), so a line matches once at most and no key is taken twice.
    wanted = {k: sha for k, sha in batch}
    expected = {sha for sha in wanted.values()}
    seen: set[bytes] = set()
    changed: list[Any] = []
    sha256 = hashlib.sha256
    for line in lines:
        sha = sha256(line).digest()
        if sha in seen or sha not in expected:
            changed.append(_key_of(line, index))
        seen.add(sha)
    if changed:
        raise _refuse_changed(
            manifest, changed, "of the backup changed at the source since it was made", secret
        )


def _array(values: list[str | None]) -> str:
    """A PostgreSQL array literal of text values, each quoted (NULL as NULL); the server
    reads each element with the key column's own input function, as a cast from text."""
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


def _locked_batch(
    source: RowDeleter,
    dataset: Named,
    conn: sa.Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    index: list[int],
    records: list[bytes],
    manifest: Manifest,
    secret: bool,
) -> int:
    """The batch's rows locked, compared with their backed-up lines and deleted by key.

    MySQL/MariaDB, where the server can write the table's lines (``line_sql``): the locked
    rows come back as their lines in key order, and a batch whose lines joined equal the
    backed-up lines joined is deleted after one comparison (CSV records delimit themselves);
    any other batch, and other databases, are compared row by row."""
    dialect = conn.dialect.name
    cols = [sa.type_coerce(table.c[c], sa.types.NullType()) for c in columns]

    def typed(key: tuple[tuple[str | None, bool], ...]) -> tuple[Any, ...]:
        return tuple(
            python_value(dialect, table.c[c], v, q) for c, (v, q) in zip(columns, key, strict=True)
        )

    texts = [_key_of_record(record, index) for record in records]
    keys = [typed(k) for k in texts]
    where = cols[0].in_([k[0] for k in keys]) if len(cols) == 1 else sa.tuple_(*cols).in_(keys)
    line = line_sql(conn.dialect.identifier_preparer, table) if dialect == "mysql" else None
    if dialect == "sqlite":
        conn.exec_driver_sql("SELECT 1")  # the transaction's snapshot; the write lock below
    elif line is not None:
        if line.locked(conn, table, where, list(columns)) == b"".join(records):
            return _delete_present(conn, table, cols, keys, manifest)
    else:
        conn.execute(
            sa.select(sa.literal(1)).select_from(table).where(where).with_for_update()
        ).all()
    sha256 = hashlib.sha256
    batch = [(k, sha256(r).digest()) for k, r in zip(texts, records, strict=True)]
    now: dict[tuple[Any, ...], list[bytes]] = {}
    lines = [csv_line(row) for row in conn.execute(source.selectable(dataset).where(where))]
    for key, sha in _keyed(lines, index):
        now.setdefault(typed(key), []).append(sha)
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
    return _delete_present(conn, table, cols, [t for t in keys if t in now], manifest)


def _delete_present(
    conn: sa.Connection, table: sa.Table, cols: list[Any], present: list[Any], manifest: Manifest
) -> int:
    """Delete the rows of these keys (each checked equal to its backup), one row a key."""
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
