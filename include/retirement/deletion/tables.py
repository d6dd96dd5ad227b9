"""Scoped deletion of table rows, each attempt re-checking exactly what it deletes.

Scope: exactly the rows of the verified backup. Whatever the attempt (first, retried after a
crash, resumed by an operator), nothing is deleted that was not checked, in the same
transaction, to be a row of the backup as it was backed up:

* **A table with a key** is deleted by key in batches of ``BATCH``, one short transaction
  each. PostgreSQL: ``COPY (DELETE ... WHERE key = ANY(CAST(... AS <type>[])) RETURNING
  ...)`` streams back exactly the rows it deleted, in the backup's own line format; any line
  that is not its key's backed-up line, or a key found twice, rolls the batch back. Other
  databases: the batch's rows are locked (``SELECT ... FOR UPDATE``; SQLite holds its write
  lock), read in the backup's line format and compared, then deleted by key, and the delete
  must remove exactly as many rows as were compared, or it rolls back.
* **A table without a usable key** is deleted in one transaction that locks it against
  writers, reads every row in the backup's line format, and deletes only if each of them is
  a row of the backup (the same rows; fewer, after an interrupted attempt or the
  application's own deletes; never one that is not in the backup). Otherwise it rolls back
  and says what differs.

Then ``VACUUM`` (PostgreSQL, SQLite) or ``OPTIMIZE TABLE`` (MySQL/MariaDB) so the freed
pages are reused (see docs/deletion.md for what that does and does not erase). Files and
objects: :mod:`retirement.deletion.objects`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.crypto.age import decrypted_chunks
from retirement.errors import DeletionRefused
from retirement.formats.csv import csv_line, csv_records, fields, physical_lines
from retirement.formats.row_bag import Matcher, RowBag
from retirement.sources.keys import pg_types, python_value
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from retirement.model.ids import DatasetId
    from retirement.model.manifest import Manifest
    from retirement.sources.base import Source
    from retirement.sources.sql import SqlSource

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
        return asdict(self)


def backup_records(manifest: Manifest, cipher: Path, identities: list[Any]) -> Iterator[bytes]:
    """Every row of a CSV backup as its exact line (no header), streamed from the age file."""
    records = csv_records(
        physical_lines(decrypted_chunks(cipher, identities), hashlib.sha256(), [0])
    )
    next(records, None)  # header
    yield from records


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


# ---------------------------------------------------------------------- current lines


def pg_copy_lines(
    conn: sa.Connection, query: str, params: list[Any] | None = None
) -> Iterator[bytes]:
    """Records of ``COPY (query) TO STDOUT`` in the backup's CSV form (FORCE_QUOTE *)."""
    raw = driver_connection(conn)
    sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
    with raw.cursor() as cursor, cursor.copy(sql, params) as copy:
        for record in copy:
            yield bytes(record)


def _pg_columns(conn: sa.Connection, table: sa.Table) -> str:
    prep = conn.dialect.identifier_preparer
    return ", ".join(prep.quote(c.name) for c in table.columns)


def _pg_select(conn: sa.Connection, table: sa.Table) -> str:
    prep = conn.dialect.identifier_preparer
    return f"SELECT {_pg_columns(conn, table)} FROM {prep.format_table(table)}"


def current_lines(source: SqlSource, dataset: DatasetId, conn: sa.Connection) -> Iterator[bytes]:
    """Every row of the table now, in the backup's line format, on ``conn``."""
    table = source._table(dataset)  # noqa: SLF001 (the source's reflected table)
    if conn.dialect.name == "postgresql":
        yield from pg_copy_lines(conn, _pg_select(conn, table))
        return
    for row in conn.execution_options(stream_results=True).execute(source.selectable(dataset)):
        yield csv_line(row)


# ---------------------------------------------------------------------- by key


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
    table = source._table(dataset)  # noqa: SLF001
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
        f"DELETE FROM {prep.format_table(table)} WHERE {cond} RETURNING {_pg_columns(conn, table)}"
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


# ---------------------------------------------------------------------- whole table


def delete_whole(
    source: SqlSource, dataset: DatasetId, manifest: Manifest, cipher: Path, identities: list[Any]
) -> tuple[int, str]:
    """Delete every row of a table without a usable key, in one locked transaction, only if
    each row there is a row of the backup. Returns (rows deleted, how it was checked)."""
    table = source._table(dataset)  # noqa: SLF001
    engine = source.engine
    if engine.dialect.name == "sqlite":
        return _sqlite_whole(source, dataset, table, manifest, cipher, identities)
    with engine.begin() as conn:
        name = conn.dialect.identifier_preparer.format_table(table)
        if conn.dialect.name == "postgresql":
            # What the DELETE returns is exactly what it removed, in the backup's line form.
            query = f"DELETE FROM {name} RETURNING {_pg_columns(conn, table)}"
            lines = pg_copy_lines(conn, query)
            bag = RowBag(lines)
            how = _judge_whole(bag, manifest, cipher, identities)
            return bag.rows, how
        locked = source.selectable(dataset).with_for_update()  # InnoDB: every row and gap
        bag = RowBag(
            csv_line(r) for r in conn.execution_options(stream_results=True).execute(locked)
        )
        how = _judge_whole(bag, manifest, cipher, identities)
        gone = conn.execute(sa.delete(table)).rowcount
        if gone != bag.rows:
            raise DeletionRefused(
                f"{manifest.dataset}: {bag.rows} rows were checked but the delete removed {gone}; "
                "rolled back, nothing was deleted"
            )
        return gone, how


def _sqlite_whole(
    source: SqlSource,
    dataset: DatasetId,
    table: sa.Table,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
) -> tuple[int, str]:
    """SQLite: the same under the database's write lock (BEGIN IMMEDIATE)."""
    with source.engine.connect() as conn:
        raw = driver_connection(conn)
        before = raw.isolation_level
        raw.isolation_level = None
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                done = _sqlite_check_and_delete(
                    raw, source, dataset, table, manifest, cipher, identities
                )
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        finally:
            raw.isolation_level = before
    return done


def _sqlite_check_and_delete(
    raw: Any,
    source: SqlSource,
    dataset: DatasetId,
    table: sa.Table,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
) -> tuple[int, str]:
    compiled = source.selectable(dataset).compile(source.engine)
    bag = RowBag(csv_line(r) for r in raw.execute(str(compiled)))
    how = _judge_whole(bag, manifest, cipher, identities)
    name = source.engine.dialect.identifier_preparer.format_table(table)
    gone = raw.execute(f"DELETE FROM {name}").rowcount
    if gone != bag.rows:
        raise DeletionRefused(
            f"{manifest.dataset}: {bag.rows} rows were checked but the delete removed {gone}; "
            "rolled back, nothing was deleted"
        )
    return gone, how


def _judge_whole(bag: RowBag, manifest: Manifest, cipher: Path, identities: list[Any]) -> str:
    """How the table's rows were found to be the backup's; DeletionRefused (the caller's
    transaction rolls back) when one is not."""
    fp = manifest.fingerprint
    matcher = Matcher(bag)
    for record in backup_records(manifest, cipher, identities):
        matcher.feed(record)
    extra = matcher.unmatched_in_bag
    if extra:
        raise DeletionRefused(
            f"{manifest.dataset}: the table has no key, and {extra} of its {bag.rows} rows are "
            f"not rows of the backup of {manifest.created_at} (added or changed since): nothing "
            "was deleted (rolled back). Re-run backup (a new version), its gate and the "
            "transfer, or give the plan a key so rows added later can stay"
        )
    if bag.rows == fp.rows:
        return "every row compared with the backup in the same locked transaction: the same rows"
    return (
        f"every row compared with the backup in the same locked transaction: {bag.rows} of "
        f"its {fp.rows} rows were still there (the rest already gone), none other"
    )


# ---------------------------------------------------------------------- around


def reclaim(engine: sa.Engine, table: sa.Table) -> str:
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


def delete_table_rows(
    source: SqlSource,
    dataset: DatasetId,
    manifest: Manifest,
    cipher: Path,
    identities: list[Any],
    *,
    secret_key: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> DeletionResult:
    """Delete exactly the backed-up rows of one table; then reclaim the space."""
    columns = tuple(manifest.fingerprint.key_columns)
    if columns:
        deleted = delete_by_key(
            source, dataset, manifest, cipher, identities, secret_key=secret_key, on_rows=on_rows
        )
        technique = (
            f"DELETE by key ({', '.join(columns)}) in batches of {BATCH}, each deleted row "
            "compared with its backed-up copy in the same transaction"
        )
    else:
        deleted, how = delete_whole(source, dataset, manifest, cipher, identities)
        technique = f"DELETE of the whole table (no key; {how})"
    table = source._table(dataset)  # noqa: SLF001
    technique += "; " + reclaim(source.engine, table)
    remaining = source.count(dataset)
    return DeletionResult("clear", technique, deleted, 0, remaining)


def drop_table(source: SqlSource, dataset: DatasetId, result: DeletionResult) -> DeletionResult:
    """DROP the table once nothing is left in it; rows added after the backup keep it."""
    table = source._table(dataset)  # noqa: SLF001
    if result.remaining:
        raise DeletionRefused(
            f"{dataset}: the plan retires the table (drop_table), but {result.remaining} rows "
            "that are not in the backup are still in it: back them up in a new run first; "
            "nothing was dropped"
        )
    with source.engine.begin() as conn:
        if source.count(dataset):
            raise DeletionRefused(f"{dataset}: rows appeared before DROP; nothing was dropped")
        table.drop(conn)
    source.forget(dataset)
    name = source.engine.dialect.identifier_preparer.format_table(table)
    return replace(result, technique=f"{result.technique}; DROP TABLE {name}")


def check_unchanged(source: Source, dataset: DatasetId, kind: str, manifest: Manifest) -> None:
    """Refuse unless the source's fingerprint now equals the one backed up (the first attempt's
    courtesy check: nothing is deleted at all when anything changed)."""
    from retirement.vault.write import fingerprint_now

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
