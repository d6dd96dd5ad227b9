"""Scoped deletion on real PostgreSQL, MariaDB and RadosGW: exactly the backed-up rows (by
single and composite keys), space reclaimed, exactly the backed-up S3 version removed; what
is left counted independently (line by line against the backup)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from retirement.crypto.keys import KeyStore
from retirement.deletion.check import left_of_backup
from retirement.deletion.objects import delete_object
from retirement.deletion.tables import check_unchanged, delete_table_rows
from retirement.errors import DeletionRefused
from retirement.formats.csv import KEY_ORDER_METHOD, PLAINTEXT_METHOD, SUM_METHOD
from retirement.model.ids import DatasetId
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource
from tests.support.awkward import AWKWARD, awkward_table
from tests.support.backups import table_backup

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))


def test_postgres_deletes_the_backed_up_rows_only_then_vacuums(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id bigint PRIMARY KEY, name text, id_card text)")
        conn.execute(
            "INSERT INTO people SELECT i, '客户' || i, '11010519491231002X' "
            "FROM generate_series(1, 12345) i"
        )
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        check_unchanged(source, "people", "table", manifest)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO people VALUES (99999, 'after the backup', NULL)")
        with pytest.raises(DeletionRefused, match=r"12345 rows then, 12346 now: \+1 rows"):
            check_unchanged(source, "people", "table", manifest)
        ticks: list[int] = []
        ids = [keys.identity("demo", "erase")]
        result = delete_table_rows(source, "people", manifest, cipher, ids, on_rows=ticks.append)
        left = left_of_backup(source, source.id_of("people"), manifest, cipher, ids)
    assert (result.deleted, result.remaining) == (12345, 1)
    assert (left.left, left.changed, left.vanished, left.remaining) == (0, 0, 12345, 1)
    assert sum(ticks) == 12345
    assert len(ticks) == 3  # batches of 5,000
    assert "VACUUM" in result.technique
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id FROM people").fetchall() == [(99999,)]


def test_postgres_drop_table_only_when_nothing_else_is_left(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    from retirement.deletion.tables import drop_table

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in ("old_log", "busy_log"):
            conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, line text)")
            conn.execute(f"INSERT INTO {name} SELECT i, 'x' FROM generate_series(1, 50) i")
    with SqlSource("pg", pg_url) as source:
        for name in ("old_log", "busy_log"):
            manifest, cipher = table_backup(source, name, keys, tmp_path / "v", ("id",))
            ids = [keys.identity("demo", "erase")]
            if name == "busy_log":
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    conn.execute("INSERT INTO busy_log VALUES (51, 'after the backup')")
            result = delete_table_rows(source, name, manifest, cipher, ids)
            if name == "old_log":
                assert "DROP TABLE" in drop_table(source, name, result).technique
            else:
                with pytest.raises(DeletionRefused, match="1 rows that are not in the backup"):
                    drop_table(source, name, result)
        assert [d.name for d in source.datasets()] == ["busy_log"]


def test_mariadb_composite_key_reserved_word_table_and_optimize(
    mysql_url: str, keys: KeyStore, tmp_path: Path
) -> None:
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
        cur.execute(
            "CREATE TABLE `lines` (invoice varchar(20), line int, amount decimal(10,2), "
            "PRIMARY KEY (invoice, line))"
        )
        cur.executemany(
            "INSERT INTO `lines` VALUES (%s, %s, %s)",
            [(f"INV-{i // 3}", i % 3, i * 1.5) for i in range(600)],
        )
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "lines", keys, tmp_path / "v", ("invoice", "line"))
        with (
            pymysql.connect(
                host="127.0.0.1", user="root", password="", database=db, autocommit=True
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("INSERT INTO `lines` VALUES ('INV-NEW', 0, 1.00)")
        ids = [keys.identity("demo", "erase")]
        result = delete_table_rows(source, "lines", manifest, cipher, ids)
        left = left_of_backup(source, source.id_of("lines"), manifest, cipher, ids)
    assert (result.deleted, result.remaining) == (600, 1)
    assert (left.left, left.vanished, left.remaining) == (0, 600, 1)
    assert "OPTIMIZE TABLE" in result.technique


def test_s3_deletes_exactly_the_backed_up_version(
    radosgw,
    s3_bucket: str,
    keys: KeyStore,
    tmp_path: Path,
) -> None:
    """Older versions were never backed up: they stay (they used to be deleted with it), as
    does an object whose name the backed-up one only begins with."""
    client = radosgw.client()
    for body in (b"v1 13812345678", b"v2 13812345679"):
        client.put_object(Bucket=s3_bucket, Key="docs/a#1.txt", Body=body)
    client.put_object(Bucket=s3_bucket, Key="docs/a#1.txt.keep", Body=b"other object")
    client.put_object(Bucket=s3_bucket, Key="docs/a", Body=b"a namesake")  # what '#' cut to
    with S3Source("bucket", client, s3_bucket, "docs/") as source:
        (ref,) = [r for r in source.datasets() if r.id.object == "a#1.txt"]
        assert ref.qualified == "bucket.a%231.txt"
        manifest, _ = table_backup(source, ref.id, keys, tmp_path / "v", (), kind="document")
        result = delete_object(source, ref.id, manifest, sibling=lambda _d: manifest)
        assert result.deleted == 1
        again = delete_object(source, ref.id, manifest, sibling=lambda _d: manifest)
        assert again.deleted == 0  # a retry finds it gone
    listed = client.list_object_versions(Bucket=s3_bucket, Prefix="docs/")
    versions = sorted((v["Key"], v["Size"]) for v in listed.get("Versions", []))
    assert versions == [("docs/a", 10), ("docs/a#1.txt", 14), ("docs/a#1.txt.keep", 12)]


def test_s3_a_replaced_object_is_refused(
    radosgw,
    s3_bucket: str,
    keys: KeyStore,
    tmp_path: Path,
) -> None:
    client = radosgw.client()
    client.put_object(Bucket=s3_bucket, Key="docs/b.txt", Body=b"backed up")
    with S3Source("bucket", client, s3_bucket, "docs/") as source:
        ds = DatasetId("bucket", "b.txt")
        manifest, _ = table_backup(source, ds, keys, tmp_path / "v", (), kind="document")
    client.put_object(Bucket=s3_bucket, Key="docs/b.txt", Body=b"written after the backup")
    with S3Source("bucket", client, s3_bucket, "docs/") as source:
        deleted = delete_object(source, ds, manifest, sibling=lambda _d: manifest)
    assert deleted.deleted == 1  # the backed-up version, by its id
    body = client.get_object(Bucket=s3_bucket, Key="docs/b.txt")["Body"].read()
    assert body == b"written after the backup"  # the newer version is untouched


def test_postgres_rows_compared_with_their_backup_before_deletion(
    pg_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    """Every type of the awkward table reads back as the very line COPY wrote, so nothing is
    mistaken for a change; a row really changed after the check is refused by key."""
    awkward_table(pg_url, "awkward")
    awkward_table(pg_url, "awkward2")
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "awkward", keys, tmp_path / "v", ("id",))
        ids = [keys.identity("demo", "erase")]
        result = delete_table_rows(source, "awkward", manifest, cipher, ids)
        assert (result.deleted, result.remaining) == (len(AWKWARD), 0)

        manifest, cipher = table_backup(source, "awkward2", keys, tmp_path / "v", ("id",))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE awkward2 SET a = 'changed after the check' WHERE id = 3")
        with pytest.raises(DeletionRefused, match=r"1 row\(s\) of the backup changed .*key 3\)"):
            delete_table_rows(source, "awkward2", manifest, cipher, ids)
        assert source.count("awkward2") == len(AWKWARD)  # the batch was not deleted


def test_postgres_batches_compare_in_one_piece_and_line_by_line_when_they_must(
    pg_url: str, keys: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual batch (every backed-up row still there, returned in key order) is compared
    with its backed-up lines in one piece; a batch some of whose rows an earlier try already
    deleted, or with a row that changed, is compared line by line: the rest is deleted, the
    changed row refused."""
    from retirement.deletion import keyed

    line_by_line: list[int] = []
    real = keyed._compare_lines  # noqa: SLF001

    def spy(lines: list[bytes], *args: Any) -> None:
        line_by_line.append(len(lines))
        real(lines, *args)

    monkeypatch.setattr(keyed, "_compare_lines", spy)
    monkeypatch.setattr(keyed, "BATCH", 400)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (id int PRIMARY KEY, phone text, note text)")
        conn.execute(
            "INSERT INTO calls SELECT i, '1381234' || i, CASE WHEN i % 7 = 0 THEN NULL "
            "ELSE E'line\\nbreak \"' || i || '\"' END FROM generate_series(1, 1000) i"
        )
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "v", ("id",))
        ids = [keys.identity("demo", "erase")]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM calls WHERE id IN (5, 6, 900)")  # an earlier try's
        result = delete_table_rows(source, "calls", manifest, cipher, ids)
        assert (result.deleted, result.remaining) == (997, 0)
        assert line_by_line == [398, 199]  # batches 1 and 3; batch 2 compared in one piece

        line_by_line.clear()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO calls SELECT i, 'x', 'y' FROM generate_series(1, 1000) i")
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "w", ("id",))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE calls SET note = 'changed' WHERE id = 450")
        with pytest.raises(DeletionRefused, match=r"1 row\(s\) of the backup changed .*key 450\)"):
            delete_table_rows(source, "calls", manifest, cipher, ids)
        assert line_by_line == [400]  # batch 1 deleted in one piece, batch 2 refused
        assert source.count("calls") == 600


@pytest.mark.parametrize("rewrite", [None, "vacuum_full"])
def test_postgres_only_vacuum_full_rewrites_the_table(
    pg_url: str, keys: KeyStore, tmp_path: Path, rewrite: str | None
) -> None:
    """Plain VACUUM leaves the table in its file (the deleted rows' bytes stay until
    overwritten); VACUUM FULL writes the rows that remain into a new file."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (id int PRIMARY KEY, phone text)")
        conn.execute("INSERT INTO calls SELECT i, '1381234' || i FROM generate_series(1, 3000) i")
    file_of = "SELECT pg_relation_filenode('calls')"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = conn.execute(file_of).fetchone()
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "v", ("id",))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO calls VALUES (9001, 'after the backup')")
        ids = [keys.identity("demo", "erase")]
        result = delete_table_rows(source, "calls", manifest, cipher, ids, rewrite=rewrite)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        after = conn.execute(file_of).fetchone()
        assert conn.execute("SELECT id FROM calls").fetchall() == [(9001,)]
    if rewrite == "vacuum_full":
        assert after != before
        assert "VACUUM FULL" in result.technique
    else:
        assert after == before
        assert "the table was not rewritten" in result.technique


def test_mariadb_rewrite_none_skips_optimize(
    mysql_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE calls (id int PRIMARY KEY, phone varchar(20))")
        conn.exec_driver_sql("INSERT INTO calls VALUES (1, '13812345678'), (2, '13812345679')")
    engine.dispose()
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "v", ("id",))
        ids = [keys.identity("demo", "erase")]
        result = delete_table_rows(source, "calls", manifest, cipher, ids, rewrite="none")
    assert result.deleted == 2
    assert "OPTIMIZE" not in result.technique
    assert "no rewrite" in result.technique


def test_postgres_reads_the_key_array_as_the_keys(pg_url: str) -> None:
    """The keys of a batch go to PostgreSQL as one array literal: every value, quotes,
    backslashes, braces, commas, spaces, empty and NULL, arrives as itself."""
    from retirement.deletion.keyed import _array

    values = ['a"b', "c\\d", "{e,f}", " g ", "", None, "NULL", "客户", "\n", '\\"']
    with psycopg.connect(pg_url) as conn:
        (got,) = conn.execute("SELECT CAST(%s AS text[])", [_array(values)]).fetchone()
    assert got == values


@pytest.mark.parametrize("method", [None, KEY_ORDER_METHOD, SUM_METHOD])
def test_postgres_a_row_changed_after_the_backup_is_caught_by_each_digest(
    pg_url: str, keys: KeyStore, tmp_path: Path, method: str | None
) -> None:
    """The plaintext's SHA-256 (new backups of keyed tables), the records' key-order SHA-256
    and the order-free sum (older manifests) each refuse a source whose row changed in
    place, with the same row count."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id bigint PRIMARY KEY, name text)")
        conn.execute("INSERT INTO people SELECT i, 'p' || i FROM generate_series(1, 20000) i")
    with SqlSource("pg", pg_url) as source:
        manifest, _ = table_backup(source, "people", keys, tmp_path / "v", ("id",), method=method)
        assert manifest.fingerprint.row_digest_method == (method or PLAINTEXT_METHOD)
        check_unchanged(source, "people", "table", manifest)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE people SET name = 'changed' WHERE id = 15000")
        with pytest.raises(DeletionRefused, match="the same number of rows, but some changed"):
            check_unchanged(source, "people", "table", manifest)


def test_mariadb_batches_compare_in_one_piece_and_row_by_row_when_they_must(
    mysql_url: str, keys: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual batch (every backed-up row still there; the server writes the locked rows'
    lines in key order) is compared with its backed-up lines in one piece; a batch some of
    whose rows an earlier try already deleted, or with a row that changed, row by row: the
    rest is deleted, the changed row refused."""
    from retirement.deletion import keyed

    row_by_row: list[int] = []
    real = keyed._keyed  # noqa: SLF001

    def spy(lines: list[bytes], index: list[int]) -> Any:
        row_by_row.append(len(lines))
        return real(lines, index)

    monkeypatch.setattr(keyed, "_keyed", spy)
    monkeypatch.setattr(keyed, "BATCH", 400)
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE calls (id bigint PRIMARY KEY, phone text, note text)"))
        conn.execute(
            sa.text("INSERT INTO calls VALUES (:i, :p, :n)"),
            [
                {"i": i, "p": f"1381234{i}", "n": None if i % 7 == 0 else f'line\nbreak "{i}"'}
                for i in range(1, 1001)
            ],
        )
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "v", ("id",))
        ids = [keys.identity("demo", "erase")]
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM calls WHERE id IN (5, 6, 900)"))  # an earlier try's
        result = delete_table_rows(source, "calls", manifest, cipher, ids)
        assert (result.deleted, result.remaining) == (997, 0)
        assert row_by_row == [398, 199]  # batches 1 and 3; batch 2 compared in one piece

        row_by_row.clear()
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO calls VALUES (:i, 'x', 'y')"),
                [{"i": i} for i in range(1, 1001)],
            )
        manifest, cipher = table_backup(source, "calls", keys, tmp_path / "w", ("id",))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE calls SET note = 'changed' WHERE id = 450"))
        with pytest.raises(DeletionRefused, match=r"1 row\(s\) of the backup changed .*key 450\)"):
            delete_table_rows(source, "calls", manifest, cipher, ids)
        assert row_by_row == [400]  # batch 1 deleted in one piece, batch 2 refused
        assert source.count("calls") == 600
    engine.dispose()


def test_mariadb_dates_decimals_and_bytes_compare_in_one_piece(
    mysql_url: str, keys: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server writes dates, date-times with and without microseconds, decimals and
    bytes as the backup has them: such a table's batches are compared in one piece."""
    from retirement.deletion import keyed

    row_by_row: list[int] = []
    real = keyed._keyed  # noqa: SLF001

    def spy(lines: list[bytes], index: list[int]) -> Any:
        row_by_row.append(len(lines))
        return real(lines, index)

    monkeypatch.setattr(keyed, "_keyed", spy)
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE ledger (id int PRIMARY KEY, day date, at datetime(6), "
                "amount decimal(12,2), raw varbinary(8), note varchar(20))"
            )
        )
        conn.execute(
            sa.text("INSERT INTO ledger VALUES (:i, :d, :a, :m, :r, :n)"),
            [
                {
                    "i": i,
                    "d": f"2024-0{i % 9 + 1}-1{i % 10}",
                    "a": f"2024-01-02 03:04:0{i % 10}" + (".000123" if i % 2 else ""),
                    "m": None if i % 5 == 0 else f"{i}.5{i % 10}",
                    "r": bytes([i % 256, 0, 255]),
                    "n": "" if i % 3 == 0 else f'"q{i}"',
                }
                for i in range(1, 301)
            ],
        )
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "ledger", keys, tmp_path / "v", ("id",))
        result = delete_table_rows(
            source, "ledger", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (300, 0)
    assert row_by_row == []  # no batch needed the row-by-row comparison
    engine.dispose()


def test_mariadb_long_documents_full_of_quotes_compare_in_one_piece(
    mysql_url: str, keys: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON documents of 30 KB with 5,000 quotes each (MariaDB's REPLACE doubles quotes in
    time quadratic in them): the locked rows come as their values in JSON, their lines are
    written here (mysql_lines) and compared in one piece with the backup; a document
    changed after the backup is refused and its row kept."""
    import json

    from retirement.deletion import keyed
    from retirement.sources import mysql_lines

    row_by_row: list[int] = []
    real = keyed._keyed  # noqa: SLF001
    monkeypatch.setattr(
        keyed, "_keyed", lambda lines, index: row_by_row.append(1) or real(lines, index)
    )
    made: list[object] = []
    joined = mysql_lines.Lines.joined
    monkeypatch.setattr(
        mysql_lines.Lines, "joined", lambda self, v: made.append(v) or joined(self, v)
    )
    docs = [json.dumps({f"k{j}": f'"{i}"' for j in range(1250)}) for i in range(1, 41)]
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE docs (id int PRIMARY KEY, doc json, note text)"))
        conn.execute(
            sa.text("INSERT INTO docs VALUES (:i, :d, :n)"),
            [{"i": i, "d": d, "n": "x"} for i, d in enumerate(docs, start=1)],
        )
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "docs", keys, tmp_path / "v", ("id",))
        assert len(made) == 40  # the export wrote each row's line from its values
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE docs SET doc = JSON_SET(doc, '$.k3', 'x') WHERE id = 40"))
        made.clear()
        with pytest.raises(DeletionRefused, match=r"1 row\(s\) of the backup changed .*key 40\)"):
            delete_table_rows(source, "docs", manifest, cipher, [keys.identity("demo", "erase")])
        assert made
        assert row_by_row == [1]  # compared in one piece, then the batch row by row
        assert source.count("docs") == 40
        with engine.begin() as conn:  # the document as backed up again: deleted in one piece
            conn.execute(sa.text("UPDATE docs SET doc = :d WHERE id = 40"), {"d": docs[39]})
        result = delete_table_rows(
            source, "docs", manifest, cipher, [keys.identity("demo", "erase")]
        )
        assert (result.deleted, result.remaining, row_by_row) == (40, 0, [1])
    engine.dispose()


def test_mariadb_a_row_changed_after_the_backup_is_caught_in_key_order(
    mysql_url: str, keys: KeyStore, tmp_path: Path
) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id bigint PRIMARY KEY, name varchar(20))"))
        conn.execute(
            sa.text("INSERT INTO people VALUES (:i, :n)"),
            [{"i": i, "n": f"p{i}"} for i in range(1, 3001)],
        )
    with SqlSource("my", mysql_url) as source:
        manifest, _ = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        assert manifest.fingerprint.row_digest_method == PLAINTEXT_METHOD
        check_unchanged(source, "people", "table", manifest)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE people SET name = 'changed' WHERE id = 7"))
        with pytest.raises(DeletionRefused, match="the same number of rows, but some changed"):
            check_unchanged(source, "people", "table", manifest)
    engine.dispose()


@pytest.mark.parametrize("versioning", ["never", "Suspended"])
def test_s3_an_object_in_a_bucket_without_versions_is_not_deleted(
    radosgw, keys: KeyStore, tmp_path: Path, versioning: str
) -> None:
    """Without versions, an object written between the check and DeleteObject would be
    deleted in the backed-up one's place, and RadosGW ignores a condition on DeleteObject (a
    review reproduced it): the deletion is refused and says how to make it exact."""
    client = radosgw.client()
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    if versioning != "never":
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning})
    client.put_object(Bucket=bucket, Key="docs/c.txt", Body=b"backed up")
    ds = DatasetId("bucket", "c.txt")
    with S3Source("bucket", client, bucket, "docs/") as source:
        manifest, _ = table_backup(source, ds, keys, tmp_path / "v", (), kind="document")
        with pytest.raises(DeletionRefused, match="keeps no versions .*Enable versioning"):
            delete_object(source, ds, manifest, sibling=lambda _d: manifest)
    assert client.get_object(Bucket=bucket, Key="docs/c.txt")["Body"].read() == b"backed up"


def test_s3_an_object_written_before_versioning_was_enabled_is_deleted_not_hidden(
    radosgw, keys: KeyStore, tmp_path: Path
) -> None:
    """Its version is "null": DeleteObject without a version only laid a delete marker over
    it, and the backed-up bytes stayed readable while the certificate said deleted."""
    client = radosgw.client()
    bucket = f"late-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="docs/d.txt", Body=b"from before versioning")
    ds = DatasetId("bucket", "d.txt")
    with S3Source("bucket", client, bucket, "docs/") as source:
        manifest, _ = table_backup(source, ds, keys, tmp_path / "v", (), kind="document")
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with S3Source("bucket", client, bucket, "docs/") as source:
        assert delete_object(source, ds, manifest, sibling=lambda _d: manifest).deleted == 1
    listed = client.list_object_versions(Bucket=bucket, Prefix="docs/")
    assert listed.get("Versions", []) == []
    assert listed.get("DeleteMarkers", []) == []
