"""Every identifier type is found by its values in PostgreSQL, MariaDB, SQLite, files and S3."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from retirement.inventory.scan import DatasetReport, scan_dataset
from retirement.model.identifiers import ric_check_char
from retirement.plan.policy import ClassificationPolicy
from retirement.sources.files import FileSource
from retirement.sources.s3 import S3Source
from retirement.sources.sql import SqlSource
from tests.pii_data import COLUMNS, EXPECTED, rows

pytestmark = pytest.mark.integration
POLICY = ClassificationPolicy.default()
ROWS = rows()
TEXT_COLS = ", ".join(f"{c} VARCHAR(200)" for c in COLUMNS[1:-1])


def _check(report: DatasetReport, *, expect_rows: int = len(ROWS)) -> None:
    assert report.rows == expect_rows
    detected = {c.name: c.detected for c in report.columns}
    assert detected == EXPECTED, {
        k: (v, EXPECTED[k]) for k, v in detected.items() if v != EXPECTED[k]
    }
    classes = {c.name: c.data_class for c in report.columns}
    assert classes["id_card"] == "sensitive"
    assert classes["remark"] == "sensitive"
    assert classes["id_number"] == "general"
    assert classes["email"] == "general"
    assert report.data_class == "sensitive"
    ratios = {c.name: c.hit_ratio for c in report.columns}
    assert ratios["id_card"] == 1.0
    assert ratios["remark"] == 1.0


def _scan_all(source) -> dict[str, DatasetReport]:
    return {ref.name: scan_dataset(source, ref, POLICY) for ref in source.datasets()}


def test_postgres(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE people (id integer PRIMARY KEY, {TEXT_COLS}, amount numeric)")
        conn.execute('CREATE TABLE "Odd ""Name"" table" (id integer PRIMARY KEY, note text)')
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO people VALUES ({', '.join(['%s'] * len(COLUMNS))})", ROWS)
            cur.execute('INSERT INTO "Odd ""Name"" table" VALUES (1, %s)', ("nothing personal",))
    with SqlSource("pg", pg_url) as source:
        found = _scan_all(source)
        assert set(found) == {"people", 'Odd "Name" table'}
        _check(found["people"])
        assert found['Odd "Name" table'].rows == 1
        assert source.count("people") == len(ROWS)
        assert source.key_columns("people") == ["id"]
        assert source.byte_size("people") > 0


def test_postgres_free_text_read_as_columns(pg_url: str) -> None:
    """COPY into Arrow keeps NULL, '' and multi-line cells apart; embedded IDs are counted."""
    rid = "11010519491231002" + ric_check_char("11010519491231002")
    remarks = [
        f"客户身份证号{rid}已核实",
        "line one\n回电 13800138000, 邮箱 li@example.com",
        None,
        "",
    ]
    remarks += [f'say "{rid}", then' for _ in range(6)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id integer PRIMARY KEY, remark text, id_no text)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO notes VALUES (%s, %s, %s)",
                [(i, r, rid if i % 2 else None) for i, r in enumerate(remarks)],
            )
    with SqlSource("pg", pg_url) as source:
        (ref,) = [r for r in source.datasets() if r.name == "notes"]
        report = scan_dataset(source, ref, POLICY)
    cols = {c.name: c for c in report.columns}
    assert report.rows == len(remarks)
    assert cols["remark"].data_class == "sensitive"
    assert cols["remark"].found == {"cn_resident_id": 7}
    assert cols["remark"].embedded == {"cn_resident_id": 7, "cn_mobile": 1, "email": 1}
    assert cols["remark"].hit_ratio == 7 / 8  # NULL and '' are not counted as cells
    assert cols["remark"].whole_hit_ratio == 0.0
    assert (cols["id_no"].detected, cols["id_no"].whole_hit_ratio) == ("cn_resident_id", 1.0)
    assert cols["id_no"].embedded == {}


def test_postgres_one_column_nulls_are_rows(pg_url: str) -> None:
    """COPY writes a one-column row holding NULL as an empty line: a row, not a line to skip."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE single (note text)")
        conn.execute("INSERT INTO single VALUES (NULL), (''), ('x'), (NULL)")
    with SqlSource("pg", pg_url) as source:
        batches = source.arrow_batches("single", 10)
        assert batches is not None
        values = [v for batch in batches for v in batch[0].to_pylist()]
    assert values == [None, "", "x", None]


def test_mariadb(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    db = engine.url.database
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
    engine.dispose()
    with SqlSource("my", mysql_url.replace("mysql+pymysql://", "mysql://")) as source:
        _check(_scan_all(source)["people"])
        assert source.count("people") == len(ROWS)


def test_sqlite_with_include_exclude(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE people (id INTEGER PRIMARY KEY, {TEXT_COLS}, amount REAL)")
        db.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, msg TEXT)")
        db.executemany(f"INSERT INTO people VALUES ({', '.join('?' * len(COLUMNS))})", ROWS)
    with SqlSource("crm", f"sqlite:///{path}", exclude=["audit_*"]) as source:
        assert [r.name for r in source.datasets()] == ["people"]
        _check(_scan_all(source)["people"])


def _write_files(root: Path) -> None:
    import openpyxl
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    with (root / "people.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(ROWS)
    with (root / "people.csv.gbk.csv").open("w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(ROWS)
    with (root / "people.jsonl").open("w", encoding="utf-8") as f:
        for r in ROWS:
            f.write(json.dumps(dict(zip(COLUMNS, r, strict=True)), ensure_ascii=False) + "\n")
    table = pa.table({c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)})
    (root / "nested").mkdir()
    pq.write_table(table, root / "nested" / "people.parquet")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Customers"
    sheet.append(COLUMNS)
    for r in ROWS:
        sheet.append(list(r))
    book.create_sheet("Empty")
    book.save(root / "people.xlsx")
    (root / "contract.pdf").write_bytes(b"%PDF-1.4 not really a pdf" + bytes(range(256)))


def test_files_every_format(tmp_path: Path) -> None:
    _write_files(tmp_path / "tree")
    with FileSource("exports", tmp_path / "tree") as source:
        found = _scan_all(source)
    tables = [
        "people.csv",
        "people.csv.gbk.csv",
        "people.jsonl",
        "nested/people.parquet",
        "people.xlsx#Customers",
    ]
    assert set(found) == {*tables, "people.xlsx#Empty", "contract.pdf"}
    for name in tables:
        _check(found[name])
    doc = found["contract.pdf"]
    assert doc.kind == "document"
    assert doc.bytes == 25 + 256
    assert len(doc.sha256) == 64
    assert doc.data_class == POLICY.documents


def test_s3_prefix(radosgw, s3_bucket: str, tmp_path: Path) -> None:
    _write_files(tmp_path / "tree")
    client = radosgw.client()
    for path in (tmp_path / "tree").rglob("*"):
        if path.is_file():
            client.upload_file(
                str(path), s3_bucket, f"exports/{path.relative_to(tmp_path / 'tree').as_posix()}"
            )
    client.put_object(Bucket=s3_bucket, Key="other/ignored.csv", Body=b"a\n1\n")
    with S3Source("bucket", client, s3_bucket, "exports/") as source:
        found = _scan_all(source)
    assert "other/ignored.csv" not in found
    for name in ("people.csv", "people.jsonl", "nested/people.parquet", "people.xlsx#Customers"):
        _check(found[name])
    assert found["contract.pdf"].kind == "document"


def test_unreadable_sources_name_the_problem(tmp_path: Path) -> None:
    from retirement.errors import SourceError

    with pytest.raises(SourceError, match="is not a directory"):
        FileSource("x", tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jsonl").write_text('{"a": 1}\nnot json\n')
    with FileSource("x", bad) as source:
        (ref,) = source.datasets()
        with pytest.raises(SourceError, match=r"broken.jsonl: line 2: not JSON"):
            scan_dataset(source, ref, POLICY)
    with (
        SqlSource("pg", "postgresql://nobody@127.0.0.1:1/none") as source,
        pytest.raises(SourceError, match="cannot list tables"),
    ):
        source.datasets()
