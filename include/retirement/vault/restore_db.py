"""Restore a CSV backup into a database table, verified while it loads, all or nothing.

The rows go in inside one transaction that commits only after the whole backup verified
(signature, ciphertext digest, row count, row digest): a corrupted or altered backup leaves
the target as it was. PostgreSQL loads with ``COPY ... FROM STDIN`` straight from the
decrypted stream; other databases get batched INSERTs. A missing table is created with TEXT
columns (values exactly as archived); create it beforehand to get typed columns. A table that
already holds rows is refused before anything is written: a restore adds rows, so a second
restore into the same table would duplicate every one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.crypto.signing import read_verified
from retirement.errors import RestoreError
from retirement.formats.csv import complete_records, parse_record
from retirement.model.ids import DatasetId
from retirement.sources.sql import driver_connection, normalize_url
from retirement.vault.verify import verify_backup

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.vault.verify import VerifyReport

    _Verify = Callable[[Callable[[bytes], object]], VerifyReport]

BATCH = 5_000


def restore_to_db(
    manifest_path: Path,
    url: str,
    public_key: Ed25519PublicKey,
    identities: list[Any],
    *,
    table: str | None = None,
    schema: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[VerifyReport, str]:
    """Load the backup into ``table`` (default: the dataset's name); return (report, table)."""
    manifest = read_verified(manifest_path, public_key)
    if manifest.format != "csv":
        raise RestoreError(
            f"{manifest_path}: {manifest.dataset} is a document, not a table: "
            "restore it with --to DIR"
        )
    name = table or DatasetId.parse(manifest.dataset).file_name.split(".")[0]
    columns = [c["name"] for c in manifest.columns]
    engine = sa.create_engine(normalize_url(url))
    try:
        load = _copy_in if engine.dialect.name == "postgresql" else _insert
        with engine.begin() as conn:
            target = _target_table(conn, name, schema, columns, manifest_path)
            report = load(
                conn,
                target,
                columns,
                lambda sink: verify_backup(
                    manifest_path, public_key, identities, on_bytes=on_bytes, sink=sink
                ),
            )
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
        # COPY runs on the driver's own connection: its errors arrive unwrapped
        raise RestoreError(
            f"{manifest.dataset}: loading into {name} failed, nothing was restored: "
            f"{getattr(exc, 'orig', exc)}"
        ) from exc
    finally:
        engine.dispose()
    return report, name


def _target_table(
    conn: sa.Connection, name: str, schema: str | None, columns: list[str], manifest_path: Path
) -> sa.Table:
    meta = sa.MetaData()
    if sa.inspect(conn).has_table(name, schema=schema):
        target = sa.Table(name, meta, schema=schema, autoload_with=conn)
        missing = [c for c in columns if c not in target.c]
        if missing:
            raise RestoreError(
                f"{manifest_path}: table {name} has no column(s) {', '.join(missing)}; "
                f"the backup has {', '.join(columns)}"
            )
        _refuse_if_filled(conn, target, manifest_path)
        return target
    target = sa.Table(name, meta, *(sa.Column(c, sa.Text) for c in columns), schema=schema)
    meta.create_all(conn)  # in the load's transaction: gone again if the load fails
    return target


def _refuse_if_filled(conn: sa.Connection, target: sa.Table, manifest_path: Path) -> None:
    """Refuse a table that already holds rows: the load would add the backup's rows to them
    (a second restore duplicates every row). On PostgreSQL the table stays locked against
    other writers until the load commits, so two restores at once cannot both find it empty."""
    if conn.dialect.name == "postgresql":
        table = conn.dialect.identifier_preparer.format_table(target)
        conn.execute(sa.text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
    if conn.execute(sa.select(sa.literal(1)).select_from(target).limit(1)).first() is None:
        return
    rows = conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
    name = f"{target.schema}.{target.name}" if target.schema else target.name
    raise RestoreError(
        f"{manifest_path}: table {name} already holds {rows:,} row{'' if rows == 1 else 's'}; "
        "a restore adds the backup's rows to them, so nothing was restored: restore into an "
        "empty table, or name another with --table"
    )


def _copy_in(
    conn: sa.Connection, target: sa.Table, columns: list[str], verify: _Verify
) -> VerifyReport:
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in columns)
    sql = f"COPY {prep.format_table(target)} ({names}) FROM STDIN WITH (FORMAT csv, HEADER true)"
    raw = driver_connection(conn)
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        return verify(copy.write)


class _InsertSink:
    """Plaintext chunks in, batched INSERTs out."""

    def __init__(self, conn: sa.Connection, target: sa.Table, columns: list[str]) -> None:
        self._conn, self._insert, self._columns = conn, sa.insert(target), columns
        self._rest = b""
        self._lines: list[bytes] = []
        self._header = True

    def write(self, chunk: bytes) -> None:
        data = self._rest + chunk
        cut = data.rfind(b"\n") + 1
        self._lines += data[:cut].splitlines(keepends=True)
        self._rest = data[cut:]
        if len(self._lines) >= BATCH:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        records = list(complete_records(self._lines, final=final))
        if self._header and records:
            records, self._header = records[1:], False
        rows = [dict(zip(self._columns, parse_record(r), strict=True)) for r in records]
        if rows:
            self._conn.execute(self._insert, rows)

    def close(self) -> None:
        if self._rest:
            self._lines.append(self._rest)
        self._flush(final=True)


def _insert(
    conn: sa.Connection, target: sa.Table, columns: list[str], verify: _Verify
) -> VerifyReport:
    sink = _InsertSink(conn, target, columns)
    report = verify(sink.write)
    sink.close()
    return report
