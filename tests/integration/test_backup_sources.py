"""Backups from real PostgreSQL, MariaDB and S3 sources verify end to end."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from retirement.crypto.keys import KeyStore, load_public_key
from retirement.errors import BackupError, ObjectChanged, SourceError
from retirement.sources.s3 import RANGE_BYTES, S3Source
from retirement.sources.sql import SqlSource
from retirement.vault.verify import verify_backup
from retirement.vault.write import back_up
from tests.pii_data import COLUMNS, rows
from tests.support.awkward import AWKWARD, awkward_table
from tests.support.backups import back_up_table

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration
ROWS = rows(300)
TEXT_COLS = ", ".join(f"{c} VARCHAR(200)" for c in COLUMNS[1:-1])


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))


def _round_trip(
    source,
    name: str,
    kind: str,
    keys: KeyStore,
    out: Path,
    key_columns: tuple[str, ...] = (),
) -> int:
    result = back_up_table(source, name, keys, out, key_columns, kind)
    report = verify_backup(
        result.manifest_path,
        load_public_key(keys.public_signing_key_pem()),
        [keys.identity("demo", "erase")],
    )
    assert report.row_digest == result.manifest.fingerprint.row_digest
    return report.rows


def test_postgres_table(pg_url: str, keys: KeyStore, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE people (id integer PRIMARY KEY, {TEXT_COLS}, amount numeric)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO people VALUES ({', '.join(['%s'] * len(COLUMNS))})", ROWS)
    with SqlSource("pg", pg_url) as source:
        assert _round_trip(source, "people", "table", keys, tmp_path / "v", ("id",)) == len(ROWS)


def test_postgres_value_longer_than_two_read_blocks(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    """A 2.4 MB value with line breaks and quotes: the backup verifies (restore-verify read
    it in 1 MiB blocks and called the backup unreadable: "straddling object")."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE documents AS SELECT i AS id, CASE WHEN i = 3 "
            "THEN repeat('ab' || chr(10) || '\"c,', 400000) ELSE 'x' END AS body "
            "FROM generate_series(1, 9) i"
        )
        conn.execute("ALTER TABLE documents ADD PRIMARY KEY (id)")
    with SqlSource("pg", pg_url) as source:
        assert _round_trip(source, "documents", "table", keys, tmp_path / "v", ("id",)) == 9


def _pg_rows(pg_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchall()


def test_postgres_copy_backup_restores_into_postgres_and_sqlite(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    """NULL vs empty string, quotes, newlines, bytes, time zones and floats survive COPY
    export and both restore paths exactly; the profile comes from the same snapshot."""
    from retirement.vault.restore_db import restore_to_db

    awkward_table(pg_url, "awkward")
    with SqlSource("pg", pg_url) as source:
        result = back_up(
            source,
            "awkward",
            qualified="pg.awkward",
            kind="table",
            plan="demo",
            disposition="erase",
            recipients=[keys.archive_key("demo", "erase").recipient],
            out_dir=tmp_path / "v",
            signing_key=keys.signing_key(),
            created_at="2026-11-23T00:00:00Z",
            key_columns=("id",),
        )
    fp = result.manifest.fingerprint
    assert (fp.rows, fp.key_min, fp.key_max) == (4, "1", "4")
    assert fp.null_counts == (0, 1, 1, 1, 1, 1, 1)
    pub = load_public_key(keys.public_signing_key_pem())
    ids = [keys.identity("demo", "erase")]

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE awkward_back (LIKE awkward INCLUDING ALL)")
    report, name = restore_to_db(result.manifest_path, pg_url, pub, ids, table="awkward_back")
    assert (report.rows, name) == (4, "awkward_back")
    assert report.null_counts == fp.null_counts
    assert _pg_rows(pg_url, "SELECT * FROM awkward_back ORDER BY id") == _pg_rows(
        pg_url, "SELECT * FROM awkward ORDER BY id"
    )

    lite = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    report, name = restore_to_db(result.manifest_path, lite, pub, ids)
    engine = sa.create_engine(lite)
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT id, a, b, c FROM {name} ORDER BY id")).all()
    engine.dispose()
    assert [(int(r[0]), r[1], r[2]) for r in got] == [(r[0], r[1], r[2]) for r in AWKWARD]
    assert [r[3] for r in got] == ["\\x0001", None, "\\x", "\\xff"]  # bytea as text


def test_restore_to_db_of_an_altered_backup_loads_nothing(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    from retirement.errors import IntegrityError
    from retirement.vault.restore_db import restore_to_db

    awkward_table(pg_url, "awkward")
    with SqlSource("pg", pg_url) as source:
        result = back_up(
            source,
            "awkward",
            qualified="pg.awkward",
            kind="table",
            plan="demo",
            disposition="erase",
            recipients=[keys.archive_key("demo", "erase").recipient],
            out_dir=tmp_path / "v",
            signing_key=keys.signing_key(),
            created_at="2026-11-23T00:00:00Z",
        )
    data = bytearray(result.ciphertext_path.read_bytes())
    data[-20] ^= 1
    result.ciphertext_path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="ciphertext"):
        restore_to_db(
            result.manifest_path,
            pg_url,
            load_public_key(keys.public_signing_key_pem()),
            [keys.identity("demo", "erase")],
            table="awkward_copy",
        )
    assert _pg_rows(pg_url, "SELECT to_regclass('awkward_copy')") == [(None,)]


def test_mariadb_table(mysql_url: str, keys: KeyStore, tmp_path: Path) -> None:
    engine = sa.create_engine(mysql_url)
    db = engine.url.database
    engine.dispose()
    with (
        pymysql.connect(
            host="127.0.0.1",
            user="root",
            password="",
            database=db,
            charset="utf8mb4",
            autocommit=True,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(f"CREATE TABLE people (id int PRIMARY KEY, {TEXT_COLS}, amount decimal(10,2))")
        cur.executemany(f"INSERT INTO people VALUES ({', '.join(['%s'] * len(COLUMNS))})", ROWS)
    with SqlSource("my", mysql_url) as source:
        assert _round_trip(source, "people", "table", keys, tmp_path / "v", ("id",)) == len(ROWS)


def test_s3_objects(radosgw, s3_bucket: str, keys: KeyStore, tmp_path: Path) -> None:
    client = radosgw.client()
    client.put_object(
        Bucket=s3_bucket, Key="docs/contract.pdf", Body=b"%PDF" + bytes(range(256)) * 50
    )
    client.put_object(
        Bucket=s3_bucket,
        Key="docs/people.csv",
        Body=("id,name\n" + "".join(f"{i},客户{i}\n" for i in range(120))).encode(),
    )
    with S3Source("bucket", client, s3_bucket, "docs/") as source:
        assert _round_trip(source, "contract.pdf", "document", keys, tmp_path / "v") == 1
        assert _round_trip(source, "people.csv", "table", keys, tmp_path / "v") == 120


def test_s3_object_replaced_while_read_in_an_unversioned_bucket_is_refused(
    radosgw, keys: KeyStore, tmp_path: Path
) -> None:
    """Without versions, each ranged GET names the ETag the source first saw (If-Match): an
    object replaced between two ranges fails the read, so a backup never mixes two objects
    (nor records one object's ETag for bytes of another)."""
    client = radosgw.client()
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)  # versioning never enabled
    first = b"A" * (RANGE_BYTES + 1000)
    client.put_object(Bucket=bucket, Key="docs/scan.bin", Body=first)
    with (
        S3Source("bucket", client, bucket, "docs/") as source,
        source.open_bytes("scan.bin") as raw,
    ):
        assert raw.read(10) == b"A" * 10  # the first range
        client.put_object(Bucket=bucket, Key="docs/scan.bin", Body=b"B" * len(first))
        with pytest.raises(ObjectChanged, match="replaced while it was read"):
            raw.read()  # the second range: another object under the same key
    with (
        S3Source("bucket", client, bucket, "docs/") as source,
        pytest.raises(BackupError, match="replaced while it was read"),
    ):
        _replaced_midway(source, client, bucket, keys, tmp_path)
    assert not [p for p in (tmp_path / "v").rglob("*") if p.is_file()]


def _replaced_midway(source: S3Source, client, bucket: str, keys: KeyStore, tmp: Path) -> None:
    """A backup of the object whose first range read is followed by a replacement."""
    body = client.get_object(Bucket=bucket, Key="docs/scan.bin")["Body"].read()
    real_get = client.get_object

    def get_then_replace(**kwargs):
        answer = real_get(**kwargs)
        if kwargs.get("Range", "").startswith("bytes=0-"):  # after the first range
            assert kwargs.get("IfMatch") or kwargs.get("VersionId"), "a read not pinned"
            client.put_object(Bucket=bucket, Key="docs/scan.bin", Body=b"C" * len(body))
        return answer

    client.get_object = get_then_replace  # the interleaving, at a set point; the server is real
    back_up_table(source, "scan.bin", keys, tmp / "v", kind="document")


def _export_bytes(source: SqlSource, name: str, *, blocks: bool) -> tuple[bytes, int]:
    export_cm = source.copy_export(name, "id", blocks=blocks)
    assert export_cm is not None
    with export_cm as export:
        if blocks:
            assert export.blocks is not None
            data = b"".join(export.blocks)
        else:
            assert export.records is not None
            data = b"".join(bytes(r) for r in export.records)
        return data, export.profiled().rows


def test_postgres_copy_in_blocks_through_psql_is_the_same_bytes(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql's COPY (blocks) and the driver's (records) give the same bytes, under session
    settings that change the text of timestamps and floats; without psql, records."""
    awkward_table(pg_url, "awkward")
    options = quote("-c TimeZone=Asia/Shanghai -c DateStyle=SQL,DMY -c extra_float_digits=0")
    with SqlSource("pg", f"{pg_url}?options={options}") as source:
        in_records, rows = _export_bytes(source, "awkward", blocks=False)
        in_blocks, rows_blocks = _export_bytes(source, "awkward", blocks=True)
        assert b"CST" in in_records or b"+08" in in_records  # the settings took effect
        assert in_blocks == in_records
        assert rows == rows_blocks == len(AWKWARD)
        monkeypatch.setenv("PATH", str(tmp_path))  # no psql: the driver's records
        export_cm = source.copy_export("awkward", "id", blocks=True)
        assert export_cm is not None
        with export_cm as export:
            assert export.blocks is None
            assert b"".join(bytes(r) for r in export.records or ()) == in_records


def _any(url: str, query: str) -> bool:
    with psycopg.connect(url) as conn:
        found = conn.execute(f"SELECT count(*) FROM {query}").fetchone()
    return bool(found and found[0])


def _waits_for_a_lock(url: str) -> bool:
    waiting = "current_database() AND wait_event_type = 'Lock'"
    return _any(url, f"pg_stat_activity WHERE datname = {waiting}")


def _copy_holds_the_table(url: str) -> bool:
    """psql's COPY (another session than the exporting one) holds its lock on ``t``."""
    holds = "l.relation = 't'::regclass AND l.granted AND a.query LIKE 'COPY%'"
    return _any(url, f"pg_locks l JOIN pg_stat_activity a USING (pid) WHERE {holds}")


def _until(what: Callable[[], bool], why: str) -> None:
    deadline = time.monotonic() + 30
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def _two_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i")
        conn.execute("CREATE TABLE t_new (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t_new SELECT i, NULL FROM generate_series(1, 20000) i")


def _ddl(url: str, ddl: str, done: threading.Event) -> threading.Thread:
    def change() -> None:
        with psycopg.connect(url) as conn:  # one transaction
            if ddl == "swap":
                conn.execute("ALTER TABLE t RENAME TO t_old")
                conn.execute("ALTER TABLE t_new RENAME TO t")
            else:
                conn.execute("TRUNCATE t")
        done.set()

    return threading.Thread(target=change)


@pytest.mark.parametrize("ddl", ["truncate", "swap"])
def test_postgres_ddl_during_an_export_waits_for_it_to_end(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, ddl: str
) -> None:
    """A TRUNCATE, or another table renamed into its place, sent while psql's COPY streams
    waits for the export to end: the profile, read beside the stream, describes the bytes
    exported (found by an adversarial review: the profile's query queued behind the DDL and
    read the emptied or the other table)."""
    from retirement.sources import pg_copy

    _two_tables(pg_url)
    done = threading.Event()
    other = _ddl(pg_url, ddl, done)
    real_profile = pg_copy._profile  # noqa: SLF001
    queued = threading.Event()

    def after_the_ddl(*args: Any) -> Any:  # the profile's thread scheduled late
        _until(lambda: _copy_holds_the_table(pg_url), "psql's COPY never held the table")
        other.start()
        _until(lambda: done.is_set() or _waits_for_a_lock(pg_url), "the DDL neither ran nor waited")
        queued.set()
        return real_profile(*args)

    monkeypatch.setattr(pg_copy, "_profile", after_the_ddl)
    with SqlSource("pg", pg_url) as source:
        export_cm = source.copy_export("t", "id", blocks=True)
        assert export_cm is not None
        with export_cm as export:
            assert queued.wait(60), "the profile never ran"  # psql holds t until it is read
            assert export.blocks is not None
            data = b"".join(export.blocks)
            profile = export.profiled()
    other.join(30)
    assert done.is_set()
    assert profile.rows == data.count(b"\n") == 20000
    assert (profile.null_counts, profile.key_max) == ((0, 0), 20000)


def test_postgres_ddl_queued_before_psqls_copy_fails_the_export_instead_of_hanging(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TRUNCATE queued after the export took its lock and before psql's COPY asked for
    one: the TRUNCATE waits for the export, psql's COPY for the TRUNCATE. psql gives up
    after its lock wait, the export fails naming why, and the TRUNCATE then runs."""
    from retirement.sources import pg_copy

    _two_tables(pg_url)
    done = threading.Event()
    other = _ddl(pg_url, "truncate", done)
    real_psql_copy = pg_copy.psql_copy

    def after_the_ddl_queued(*args: Any) -> Any:
        other.start()
        _until(lambda: _waits_for_a_lock(pg_url), "the TRUNCATE did not wait for the export")
        return real_psql_copy(*args)

    monkeypatch.setattr(pg_copy, "psql_copy", after_the_ddl_queued)
    monkeypatch.setattr(pg_copy, "PSQL_LOCK_WAIT", "1s")
    why = r"due to lock timeout[\s\S]*another session is changing the table's definition"
    with SqlSource("pg", pg_url) as source, pytest.raises(SourceError, match=why):
        _export_bytes(source, "t", blocks=True)
    other.join(30)
    assert done.is_set()


def test_postgres_copy_through_psql_reads_the_snapshot_of_the_profile(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row committed after the export began is neither counted nor exported: not by psql's
    COPY, and not by the profile, which is read beside the stream (here: after the row was
    committed, so only the snapshot can keep it out)."""
    from retirement.sources import pg_copy

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 1000) i")
    real_profile = pg_copy._profile  # noqa: SLF001

    def late_then_profile(*args: Any) -> Any:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (1001, NULL)")
        return real_profile(*args)

    monkeypatch.setattr(pg_copy, "_profile", late_then_profile)
    with SqlSource("pg", pg_url) as source:
        export_cm = source.copy_export("t", "id", blocks=True)
        assert export_cm is not None
        with export_cm as export:
            assert export.blocks is not None
            data = b"".join(export.blocks)
            profile = export.profiled()
    assert profile.rows == data.count(b"\n") == 1000
    assert (profile.null_counts, profile.key_max) == ((0, 0), 1000)
    assert b"1001" not in data
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1001,)  # it was committed
