"""MySQL/MariaDB's export formatted by the server (sources.mysql_export) gives the very bytes
the row path gives (source.batches + csv_line): a model-based test on random tables of
every column type the export takes, random values (quotes, commas, newlines, Chinese, NUL,
empty strings, NULLs, dates that are not real dates), with and without a primary key. The
row digest, the counts and the key range a backup records depend on those bytes: a
difference would make every deletion refuse (or, worse, a fingerprint match the wrong rows).
Tables with a type the server cannot format that way take the row path."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.formats.csv import csv_line
from retirement.sources import mysql_export, mysql_lines
from retirement.sources.sql import SqlSource

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(lambda c: c != "\x00")
    | st.sampled_from(['"', ",", "\n", "\r", "\\", "'", "客", "\x00"]),
    max_size=12,
)
# (SQL type, values): each a type the export formats on the server
TYPES: dict[str, st.SearchStrategy[Any]] = {
    "INT": st.integers(-(2**31), 2**31 - 1),
    "BIGINT UNSIGNED": st.integers(0, 2**64 - 1),
    "TINYINT(1)": st.integers(-128, 127),
    "DECIMAL(12,3)": st.decimals(min_value=-(10**8), max_value=10**8, places=3),
    "VARCHAR(40)": TEXT,
    "TEXT": TEXT,
    "JSON": st.lists(TEXT, max_size=3).map(json.dumps),  # LONGTEXT, a JSON document
    "CHAR(3)": st.text(st.sampled_from('ab 客"'), max_size=3).map(str.rstrip),
    "ENUM('a','b','c d')": st.sampled_from(["a", "b", "c d"]),
    "VARBINARY(16)": st.binary(max_size=16),
    "BLOB": st.binary(max_size=40),
    "DATE": st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))
    | st.sampled_from(["0000-00-00", "2024-02-30", "2024-00-10"]),
    "DATETIME(6)": st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31))
    | st.sampled_from(["0000-00-00 00:00:00", "2024-02-30 01:02:03.5"]),
    "DATETIME": st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2037, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
}


def _connect(url: str) -> pymysql.Connection[Any]:
    database = sa.make_url(url).database
    return pymysql.connect(
        host="127.0.0.1", user="root", password="", database=database, autocommit=True
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], bool, list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=6))
    keyed = draw(st.booleans())
    rows = draw(
        st.lists(st.tuples(*(st.none() | TYPES[k] for k in kinds)), min_size=0, max_size=25)
    )
    return kinds, keyed, rows


def _row_path(source: SqlSource, name: str) -> bytes:
    return b"".join(csv_line(row) for batch in source.batches(name) for row in batch)


def _server_path(source: SqlSource, name: str, key: str | None, *, blocks: bool) -> Any:
    export_cm = source.copy_export(name, key, blocks=blocks)
    assert export_cm is not None, "every type of these tables is formatted by the server"
    with export_cm as export:
        if blocks:
            data = b"".join(export.blocks or ())
        else:
            data = b"".join(bytes(r) for r in export.records or ())
        return data, export


def _locked(source: SqlSource, name: str, cut_at: int = 4) -> tuple[bytes, bytes, bytes]:
    """Deletion's locked lines of the whole table (``TableLines.locked``): joined by the
    server, row by row, and joined with a limit so low the join is cut (then row by row)."""
    table = source.table(name)
    with source.begin() as conn:
        lines = mysql_export.line_sql(conn.dialect.identifier_preparer, table)
        assert lines is not None
        joined = lines.locked(conn, table, sa.true(), ["id"])
        rows = lines.locked_rows(conn, table, sa.true(), ["id"])
        limit, mysql_export.JOINED_LIMIT = mysql_export.JOINED_LIMIT, str(cut_at)
        try:
            cut = lines.locked(conn, table, sa.true(), ["id"])
        finally:
            mysql_export.JOINED_LIMIT = limit
    return joined, rows, cut


@pytest.fixture(params=["long values", "every quoted value"])
def quotes_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows with a long text value holding a quote come as JSON (mysql_lines): with the
    threshold at 0, every row with a quote does, so the model test covers both ways."""
    if request.param == "every quoted value":
        monkeypatch.setattr(mysql_lines, "LONG_TEXT", 0)


@pytest.fixture
def mysql_db(mysql_url: str) -> Iterator[tuple[str, pymysql.Connection[Any]]]:
    conn = _connect(mysql_url)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # dates that are not real
    yield mysql_url, conn
    conn.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=tables())
def test_the_server_formats_every_row_as_the_row_path_does(
    mysql_db: tuple[str, pymysql.Connection[Any]],
    quotes_path: None,
    table: tuple[list[str], bool, list[tuple[Any, ...]]],
) -> None:
    url, conn = mysql_db
    kinds, keyed, rows = table
    columns = [f"c{i}" for i in range(len(kinds))]
    key = "id" if keyed else None
    defs = ", ".join(f"{c} {k}" for c, k in zip(columns, kinds, strict=True))
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS model")
        head = "id INT PRIMARY KEY, " if keyed else ""
        cur.execute(f"CREATE TABLE model ({head}{defs}) DEFAULT CHARSET=utf8mb4")
        if rows:
            names = (["id"] if keyed else []) + columns
            marks = ", ".join(["%s"] * len(names))
            values = [((i,) if keyed else ()) + row for i, row in enumerate(rows)]
            cur.executemany(f"INSERT INTO model ({', '.join(names)}) VALUES ({marks})", values)
    with SqlSource("my", url) as source:
        expected = _row_path(source, "model")
        in_blocks, export = _server_path(source, "model", key, blocks=True)
        in_records, _ = _server_path(source, "model", key, blocks=False)
        if keyed:  # (without a key the order is the server's: the same rows, as a set)
            assert in_blocks == in_records == expected
            assert _locked(source, "model") == (expected, expected, expected)
        else:
            assert sorted(in_blocks.splitlines(True)) == sorted(expected.splitlines(True))
        assert export.profiled().rows == len(rows)
        names = (["id"] if keyed else []) + columns
        nulls = [sum(r[i] is None for r in rows) for i in range(len(columns))]
        assert list(export.profiled().null_counts) == ([0] if keyed else []) + nulls, names
        if keyed and rows:
            assert (export.profiled().key_min, export.profiled().key_max) == (0, len(rows) - 1)


def test_a_zero_date_and_an_impossible_date_are_kept_as_their_text(
    mysql_db: tuple[str, pymysql.Connection[Any]],
) -> None:
    """Found by the model test: the drivers give a date that is not a real one as the text
    the server sent, which the row path quotes; the server path must do the same."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE dates (id INT PRIMARY KEY, d DATE, t DATETIME(6))")
        cur.execute(
            "INSERT INTO dates VALUES (1, '0000-00-00', '2024-02-30 01:02:03.5'), "
            "(2, '2024-03-01', '2024-03-01 10:00:00'), (3, NULL, '2024-03-01 10:00:00.25')"
        )
    with SqlSource("my", url) as source:
        data, _ = _server_path(source, "dates", "id", blocks=True)
        assert data == _row_path(source, "dates")
    assert data.splitlines() == [
        b'1,"0000-00-00","2024-02-30 01:02:03.500000"',
        b"2,2024-03-01,2024-03-01T10:00:00",
        b"3,,2024-03-01T10:00:00.250000",
    ]


def test_a_row_whose_json_is_over_max_allowed_packet_comes_as_the_servers_line(
    mysql_db: tuple[str, pymysql.Connection[Any]],
) -> None:
    """Found by review: JSON writes a control character as six (\\u0001), so a value of
    control characters with a quote, a fifth of max_allowed_packet long, is NULL as JSON
    (the server's warning 1301): its row comes as the server's line instead of failing."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        (packet,) = cur.fetchone()
        cur.execute("CREATE TABLE controls (id INT PRIMARY KEY, a LONGTEXT)")
        value = "\x01" * (int(packet) // 5) + '"'
        cur.execute("INSERT INTO controls VALUES (1, %s), (2, 'x\"y')", (value,))
    with SqlSource("my", url) as source:
        data, _ = _server_path(source, "controls", "id", blocks=True)
        assert data == _row_path(source, "controls")
    assert len(data) > packet // 5


@pytest.mark.parametrize("mode", ["NO_BACKSLASH_ESCAPES", "EMPTY_STRING_IS_NULL", "ORACLE"])
def test_the_lines_do_not_depend_on_the_sessions_sql_mode(
    mysql_db: tuple[str, pymysql.Connection[Any]], mode: str
) -> None:
    """Found by review: under these modes the server's SQL wrote other lines ('\\n' as two
    characters, '' as NULL); the export drops them from its session (mysql_lines)."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE modes (id INT PRIMARY KEY, t TEXT, b VARBINARY(4), d DATE)")
        cur.execute(
            "INSERT INTO modes VALUES (1, '', NULL, NULL), (2, NULL, 0x00ff, '2024-01-02'), "
            "(3, %s, '', NULL)",
            ('a "q" ' * 300,),
        )
    with SqlSource("my", url) as plain:
        expected = _row_path(plain, "modes")
    moded = sa.make_url(url).update_query_dict({"init_command": f"SET SESSION sql_mode='{mode}'"})
    with SqlSource("my", moded.render_as_string(hide_password=False)) as source:
        if source.copy_export("modes", "id") is None:  # Oracle's types: the row path
            assert mode == "ORACLE"
            assert _row_path(source, "modes") == expected
            return
        data, _ = _server_path(source, "modes", "id", blocks=True)
    assert data == expected


@pytest.mark.parametrize(
    "column",
    [
        "f FLOAT",
        "t TIME",
        "b BIT(3)",
        "s SET('x','y')",
        "d DOUBLE",
        "y TIME(3)",
    ],
)
def test_a_type_the_server_cannot_format_takes_the_row_path(
    mysql_db: tuple[str, pymysql.Connection[Any]], column: str
) -> None:
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE other (id INT PRIMARY KEY, {column})")
    with SqlSource("my", url) as source:
        assert source.copy_export("other", "id") is None


def test_the_export_reads_one_snapshot(mysql_db: tuple[str, pymysql.Connection[Any]]) -> None:
    """A row committed after the export began is neither counted nor exported."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"v{i}") for i in range(1000)])
    with SqlSource("my", url) as source:
        export_cm = source.copy_export("t", "id", blocks=True)
        assert export_cm is not None
        with export_cm as export:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (1000, 'late')")
            data = b"".join(export.blocks or ())
    assert export.profiled().rows == data.count(b"\n") == 1000
    assert b"late" not in data


def test_the_export_connects_with_the_sources_tls_options(mysql_url: str) -> None:
    from retirement.sources.mysql_export import export_url

    ssl = {"ssl_ca": "/etc/ssl/ca.pem", "ssl_cert": "/etc/ssl/c.pem", "ssl_key": "/etc/ssl/c.key"}
    tls = sa.make_url(mysql_url).update_query_dict({**ssl, "ssl_check_hostname": "true"})
    with SqlSource("my", tls.render_as_string(hide_password=False)) as source:
        row_path = source.engine_url()
        _, pymysql_args = sa.create_engine(row_path).dialect.create_connect_args(row_path)
        url = export_url(source)
        _, mysqldb_args = sa.create_engine(url).dialect.create_connect_args(url)
    assert url.drivername == "mysql+mysqldb"
    assert mysqldb_args["ssl"] == pymysql_args["ssl"]
    assert mysqldb_args["ssl"]["ca"] == "/etc/ssl/ca.pem"
    assert mysqldb_args["charset"] == "utf8mb4"


def test_deletions_locked_lines_come_joined_unless_a_row_comes_as_json(
    mysql_db: tuple[str, pymysql.Connection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One value from the server for the usual batch; row by row where a long text with a
    quote makes a row come as JSON (``GROUP_CONCAT`` leaves such a row's NULL line out)."""
    url, conn = mysql_db
    rows_read: list[int] = []
    real = mysql_export.TableLines.locked_rows

    def spy(self: Any, *args: Any) -> bytes:
        rows_read.append(1)
        return real(self, *args)

    monkeypatch.setattr(mysql_export.TableLines, "locked_rows", spy)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE docs (id INT PRIMARY KEY, body TEXT) DEFAULT CHARSET=utf8mb4")
        cur.executemany("INSERT INTO docs VALUES (%s, %s)", [(1, 'a "b"'), (2, None), (3, "c")])
    with SqlSource("my", url) as source:
        expected = _row_path(source, "docs")
        assert _locked(source, "docs")[0] == expected
        assert rows_read == [1, 1]  # the explicit row-by-row read, then the cut join
        rows_read.clear()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO docs VALUES (4, %s)", ['"' + "x" * 2000])
        expected = _row_path(source, "docs")
        assert _locked(source, "docs")[0] == expected
        assert rows_read == [1, 1, 1]


@pytest.mark.parametrize("cut_at", range(4, 24))
def test_a_join_cut_inside_a_character_or_at_a_record_end_is_read_again(
    mysql_db: tuple[str, pymysql.Connection[Any]], cut_at: int
) -> None:
    """The server cuts a join at ``group_concat_max_len`` bytes, backing off to a character's
    start, so the value it returns can be shorter than the limit, and can end exactly at a
    record's end: whatever the cut, the lines are read again unless every row's record is
    there whole."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE cut (id INT PRIMARY KEY, t TEXT) DEFAULT CHARSET=utf8mb4")
        cur.executemany("INSERT INTO cut VALUES (%s, %s)", [(1, "😀"), (2, "a"), (3, "😀😀")])
    with SqlSource("my", url) as source:
        expected = _row_path(source, "cut")
        assert _locked(source, "cut", cut_at) == (expected, expected, expected)
