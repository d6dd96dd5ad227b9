"""A MariaDB table read as Arrow columns (sources.mysql_arrow: CSV lines written by the server,
parsed by pyarrow) gives the inventory the very strings the row path gives (source.batches,
``str`` of each value): a model-based test on random tables of every column type the path
takes, random values (quotes, commas, newlines, CR, Chinese, NUL, empty strings, NULLs, dates
that are not real dates, a latin1 column). Tables with another type are read row by row; an
early close drops the connection instead of reading the rest."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.inventory.columns import column_batches
from retirement.sources import mysql_lines
from retirement.sources.sql import SqlSource

pytestmark = pytest.mark.integration

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(lambda c: c != "\x00")
    | st.sampled_from(['"', ",", "\n", "\r", "\\", "'", "客", "\x00", " "]),
    max_size=12,
)
LATIN1 = st.text(st.characters(codec="latin-1") | st.sampled_from(['"', ",", "\n"]), max_size=8)
DATES = st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)) | st.sampled_from(
    ["0000-00-00", "2024-02-30", "2024-00-10"]
)
# (SQL type, values): each a type the columnar path takes
TYPES: dict[str, st.SearchStrategy[Any]] = {
    "INT": st.integers(-(2**31), 2**31 - 1),
    "BIGINT UNSIGNED": st.integers(0, 2**64 - 1),
    "TINYINT(1)": st.integers(-128, 127),
    "YEAR": st.integers(1901, 2155),
    "DECIMAL(12,3)": st.decimals(min_value=-(10**8), max_value=10**8, places=3),
    "DECIMAL(20,6)": st.decimals(min_value=-(10**13), max_value=10**13, places=6),
    "DECIMAL(10,0)": st.integers(-(10**9), 10**9),
    "VARCHAR(40)": TEXT,
    "TEXT": TEXT,
    "JSON": st.lists(TEXT, max_size=3).map(json.dumps),  # LONGTEXT, a JSON document
    "VARCHAR(20) CHARACTER SET latin1": LATIN1,
    "CHAR(3)": st.text(st.sampled_from('ab 客"'), max_size=3).map(str.rstrip),
    "ENUM('a','b','c d')": st.sampled_from(["a", "b", "c d"]),
    "DATE": DATES,
    "DATETIME(6)": st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31))
    | st.sampled_from(["0000-00-00 00:00:00", "2024-02-30 01:02:03.5"]),
    "DATETIME(3)": st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    "DATETIME": st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2037, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
    "TIMESTAMP NULL": st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2037, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
}


def _connect(url: str) -> pymysql.Connection[Any]:
    database = sa.make_url(url).database
    return pymysql.connect(
        host="127.0.0.1",
        user="root",
        password="",
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )


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


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=0, max_size=6))
    rows = draw(
        st.lists(st.tuples(*(st.none() | TYPES[k] for k in kinds)), min_size=0, max_size=25)
    )
    return kinds, rows


def _strings(source: SqlSource, name: str, *, full: bool) -> list[list[str | None]]:
    (ref,) = [r for r in source.datasets() if r.name == name]
    out: list[list[str | None]] = [[] for _ in source.schema(ref.id)]
    for batch in column_batches(source, ref, 7, full=full):
        for column, array in zip(out, batch, strict=True):
            column.extend(array.to_pylist())
    return out


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=tables())
def test_the_columns_are_the_row_paths_strings(
    mysql_db: tuple[str, pymysql.Connection[Any]],
    quotes_path: None,
    table: tuple[list[str], list[tuple[Any, ...]]],
) -> None:
    url, conn = mysql_db
    kinds, rows = table
    columns = [f"c{i}" for i in range(len(kinds))]
    defs = "".join(f", {c} {k}" for c, k in zip(columns, kinds, strict=True))
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS model")
        cur.execute(f"CREATE TABLE model (id INT PRIMARY KEY{defs}) DEFAULT CHARSET=utf8mb4")
        if rows:
            names = ", ".join(["id", *columns])
            marks = ", ".join(["%s"] * (len(columns) + 1))
            values = [(i, *row) for i, row in enumerate(rows)]
            cur.executemany(f"INSERT INTO model ({names}) VALUES ({marks})", values)
    with SqlSource("my", url) as source:
        assert source.arrow_batches("model", 7) is not None, "every type here is columnar"
        assert _strings(source, "model", full=True) == _strings(source, "model", full=False)


def test_values_longer_than_pyarrows_block_and_a_cut_crlf_are_the_row_paths(
    mysql_db: tuple[str, pymysql.Connection[Any]],
) -> None:
    """A 2.8 MB value of \\r\\n and commas: one batch of lines is one pyarrow block
    (pyarrow's own 1 MiB blocks failed it, "straddling object"; they also drop the \\n of a
    \\r\\n a block boundary cuts)."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE long_notes (id INT PRIMARY KEY, note LONGTEXT)")
        notes = [("a\r\n" * (i % 7 + 1)) + "z" * (i % 13) for i in range(60)]
        # a long value with quotes: its row comes as JSON (mysql_lines)
        notes[40] = "ab\r\n,c" * 400_000 + '"q"\r\n'
        cur.executemany("INSERT INTO long_notes VALUES (%s, %s)", list(enumerate(notes)))
    with SqlSource("my", url) as source:
        (ref,) = [r for r in source.datasets() if r.name == "long_notes"]
        columns = [[], []]
        for batch in column_batches(source, ref, 50, full=True):
            for column, array in zip(columns, batch, strict=True):
                column.extend(array.to_pylist())
    assert columns[1] == notes


def _documents() -> list[tuple[int, str | None, str | None]]:
    """Rows of (id, JSON document, latin1 note): long documents full of quotes (the values
    MariaDB's REPLACE doubles in quadratic time), short ones, NULLs."""
    doc = json.dumps({f"k{i}": f'v "{i}" \\ \n' for i in range(3000)})  # 90 KB, 15,000 quotes
    return [
        (0, doc, 'caf\u00e9 "x"' * 100),
        (1, '{"a": "b"}', None),
        (2, None, "plain"),
        (3, json.dumps(["x" * 1100]), '"' * 1100),
        (4, "[" + "1, " * 400 + "1]", ""),  # long, no quote
    ]


def test_long_quoted_values_come_as_json_and_are_the_row_paths(
    mysql_db: tuple[str, pymysql.Connection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON column of 90 KB documents (15,000 quotes each) and a latin1 column: the rows
    with a long value holding a quote come as their values in JSON and are written here
    (mysql_lines), the same strings as the row path; the others are the server's lines."""
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE docs (id INT PRIMARY KEY, doc JSON, note TEXT CHARACTER SET latin1)"
        )
        cur.executemany("INSERT INTO docs VALUES (%s, %s, %s)", _documents())
    made: list[object] = []
    joined = mysql_lines.Lines.joined
    monkeypatch.setattr(
        mysql_lines.Lines, "joined", lambda self, v: made.append(v) or joined(self, v)
    )
    with SqlSource("my", url) as source:
        assert _strings(source, "docs", full=True) == _strings(source, "docs", full=False)
    assert len(made) == 2  # rows 0 and 3, each with a long value holding a quote


def test_a_one_column_tables_nulls_and_empty_strings(
    mysql_db: tuple[str, pymysql.Connection[Any]],
) -> None:
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE single (note TEXT)")
        cur.execute("INSERT INTO single VALUES (NULL), (''), ('x'), (NULL), ('\"')")
    with SqlSource("my", url) as source:
        assert _strings(source, "single", full=True) == [[None, "", "x", None, '"']]


def test_lines_that_parse_as_another_number_of_rows_are_an_error(
    mysql_db: tuple[str, pymysql.Connection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose lines would parse as fewer rows than the server sent stops the scan
    instead of counting short. A fake parser: no server sends such lines."""
    import pyarrow.csv as pacsv

    from retirement.errors import SourceError
    from retirement.sources import mysql_arrow

    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE pairs (a TEXT, b INT)")
        cur.execute("INSERT INTO pairs VALUES ('x', 1), ('y', 2), ('z', 3)")
    real = pacsv.read_csv
    monkeypatch.setattr(mysql_arrow.pacsv, "read_csv", lambda data, **kw: real(data, **kw).slice(1))
    with SqlSource("my", url) as source, pytest.raises(SourceError, match="sent 3 rows"):
        _strings(source, "pairs", full=True)


@pytest.mark.parametrize(
    "kind", ["FLOAT", "DOUBLE", "TIME", "BIT(3)", "SET('a','b')", "BLOB", "DECIMAL(20,7)"]
)
def test_other_types_are_read_row_by_row(
    mysql_db: tuple[str, pymysql.Connection[Any]], kind: str
) -> None:
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE other (id INT PRIMARY KEY, note TEXT, v {kind})")
    with SqlSource("my", url) as source:
        assert source.arrow_batches("other", 10) is None


def test_wide_rows_are_fetched_a_few_at_a_time(
    mysql_db: tuple[str, pymysql.Connection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of 200 KB: after the first fetch, each holds about FETCH_BYTES, not the batch's
    rows (5,000 rows of 16 KB documents held 800 MB)."""
    url, conn = mysql_db
    monkeypatch.setattr(mysql_lines, "FIRST_FETCH", 4)
    monkeypatch.setattr(mysql_lines, "FETCH_BYTES", 500_000)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE wide (id INT PRIMARY KEY, body LONGTEXT)")
        cur.executemany(
            "INSERT INTO wide VALUES (%s, %s)", [(i, f"{i:06d}" * 33_000) for i in range(30)]
        )
    with SqlSource("my", url) as source:
        batches = source.arrow_batches("wide", 1000)
        assert batches is not None
        sizes = [len(batch[0]) for batch in batches]
    assert sizes[0] == 4
    assert sum(sizes) == 30
    assert max(sizes[1:]) == 2


def test_an_early_close_drops_the_connection(
    mysql_db: tuple[str, pymysql.Connection[Any]],
) -> None:
    url, conn = mysql_db
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, note VARCHAR(64))")
        cur.execute(
            "INSERT INTO big SELECT seq, MD5(seq) FROM seq_1_to_200000"
        )  # MariaDB's sequence engine
    with SqlSource("my", url) as source:
        batches = source.arrow_batches("big", 1000)
        assert batches is not None
        first = next(iter(batches))
        assert len(first[0]) == mysql_lines.FIRST_FETCH  # then as many as hold FETCH_BYTES
        assert _still_reading(conn)  # the export streams: the server is still at it
        started = time.monotonic()
        batches.close()  # type: ignore[attr-defined]  (a generator)
        assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5  # the server notices the closed socket at its next write
    while _still_reading(conn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _still_reading(conn)


def _still_reading(conn: pymysql.Connection[Any]) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM information_schema.PROCESSLIST "
            "WHERE INFO LIKE %s AND ID != CONNECTION_ID() AND DB = DATABASE()",
            ("%CONCAT_WS%",),
        )
        return cur.fetchone() != (0,)
