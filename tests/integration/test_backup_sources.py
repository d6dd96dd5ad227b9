"""Backups from real PostgreSQL, MariaDB and S3 sources verify end to end."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from retirement.crypto.keys import KeyStore, load_public_key
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource
from retirement.vault.verify import verify_backup
from retirement.vault.write import back_up
from tests.pii_data import COLUMNS, rows

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
    result = back_up(
        source,
        name,
        qualified=f"{source.name}.{name}",
        kind=kind,
        plan="demo",
        disposition="erase",
        recipients=[keys.archive_key("demo", "erase").recipient],
        out_dir=out,
        signing_key=keys.signing_key(),
        created_at="2026-11-23T00:00:00Z",
        key_columns=key_columns,
    )
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


AWKWARD = [
    (1, "plain", "", b"\x00\x01", True, "2024-02-29 23:59:59+00", None),
    (2, 'quote " and, comma', None, None, False, None, 1.5),
    (3, "line\nbreak 中文", "x", b"", None, "1999-12-31 00:00:00+08", -0.0),
    (4, None, '"', b"\xff", True, "2024-01-01 00:00:00+00", 1e300),
]


def _awkward_table(pg_url: str, name: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id integer PRIMARY KEY, a text, b varchar(10), c bytea, "
            "d boolean, e timestamptz, f double precision)"
        )
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s, %s)", AWKWARD)


def _pg_rows(pg_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql).fetchall()


def test_postgres_copy_backup_restores_into_postgres_and_sqlite(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    """NULL vs empty string, quotes, newlines, bytes, time zones and floats survive COPY
    export and both restore paths exactly; the profile comes from the same snapshot."""
    from retirement.vault.restore_db import restore_to_db

    _awkward_table(pg_url, "awkward")
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

    _awkward_table(pg_url, "awkward")
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
