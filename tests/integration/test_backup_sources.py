"""Backups from real PostgreSQL, MariaDB and S3 sources verify end to end."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from retirement.backup import back_up
from retirement.keys import KeyStore, load_public_key
from retirement.restore import verify_backup
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource
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
    out: Path,  # noqa: ANN001
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


def test_s3_objects(radosgw, s3_bucket: str, keys: KeyStore, tmp_path: Path) -> None:  # noqa: ANN001
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
