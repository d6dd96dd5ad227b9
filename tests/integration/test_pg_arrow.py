"""A PostgreSQL table read as Arrow columns (sources.pg_arrow) through psql gives the very
columns the driver's COPY gives: random tables of text (quotes, commas, newlines, CR, Chinese,
empty strings), integers, numerics, floats and timestamps with NULLs, under session settings
that change how timestamps and floats are written. psql is killed and reaped when the reader
stops early, and its failure is a SourceError naming the table and psql's message."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.errors import SourceError
from retirement.sources.sql import SqlSource

pytestmark = pytest.mark.integration

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(lambda c: c != "\x00")
    | st.sampled_from(['"', ",", "\n", "\r", "\\", "'", "客", " "]),
    max_size=12,
)
# (SQL type, values)
TYPES: dict[str, st.SearchStrategy[Any]] = {
    "text": TEXT,
    "varchar(30)": TEXT,
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "numeric": st.decimals(allow_nan=False, allow_infinity=False, places=4),
    "double precision": st.floats(allow_nan=False, allow_infinity=False),
    "timestamp": st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)),
    "timestamptz": st.datetimes(
        dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
    ),
    "date": st.dates(),
}
# settings that change COPY's text of timestamps and floats (psql must get the same)
OPTIONS = quote("-c TimeZone=Asia/Shanghai -c DateStyle=SQL,DMY -c extra_float_digits=0")


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[tuple[Any, ...]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=6))
    rows = draw(
        st.lists(st.tuples(*(st.none() | TYPES[k] for k in kinds)), min_size=0, max_size=25)
    )
    return kinds, rows


def _read(source: SqlSource, name: str, *, psql: bool) -> list[list[str | None]]:
    """Every column as Python strings, through psql or (psql hidden) the driver's COPY."""
    assert shutil.which("psql") is not None, "these tests need psql (postgresql-client)"
    hidden = mock.patch("retirement.sources.pg_arrow.shutil.which", return_value=None)
    with contextlib.nullcontext() if psql else hidden:
        batches = source.arrow_batches(name, 100)
        assert batches is not None
        out: list[list[str | None]] = []
        for batch in batches:
            out = out or [[] for _ in batch]
            for column, array in zip(out, batch, strict=True):
                assert str(array.type) == "string"
                column.extend(array.to_pylist())
    return out


@pytest.fixture
def pg(pg_session_url: str) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    with psycopg.connect(pg_session_url, autocommit=True) as conn:
        yield pg_session_url, conn


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=tables())
def test_psql_and_the_driver_give_the_same_columns(
    pg: tuple[str, psycopg.Connection[Any]], table: tuple[list[str], list[tuple[Any, ...]]]
) -> None:
    url, conn = pg
    kinds, rows = table
    columns = [f"c{i}" for i in range(len(kinds))]
    conn.execute("DROP TABLE IF EXISTS model")
    conn.execute(
        f"CREATE TABLE model ({', '.join(f'{c} {k}' for c, k in zip(columns, kinds, strict=True))})"
    )
    with conn.cursor() as cur, cur.copy(f"COPY model ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    with SqlSource("pg", f"{url}?options={OPTIONS}") as source:
        through_psql = _read(source, "model", psql=True)
        through_driver = _read(source, "model", psql=False)
    assert through_psql == through_driver
    assert len(through_psql) == (len(columns) if rows else 0)
    for i, kind in enumerate(kinds):  # NULL and '' apart, text kept exactly
        got = through_psql[i] if rows else []
        expected = [row[i] for row in rows]
        if kind in ("text", "varchar(30)"):
            assert got == expected
        elif kind in ("bigint", "integer"):
            assert got == [None if v is None else str(v) for v in expected]
        elif kind == "numeric":
            assert [None if v is None else Decimal(v) for v in got] == expected


def test_the_sessions_output_settings_reach_psql(pg: tuple[str, psycopg.Connection[Any]]) -> None:
    url, conn = pg
    conn.execute("DROP TABLE IF EXISTS styled")
    conn.execute(
        "CREATE TABLE styled AS SELECT timestamptz '2024-01-01 00:00:00+00' AS at, "
        "1 / 3.0::double precision AS third"
    )
    with SqlSource("pg", f"{url}?options={OPTIONS}") as source:
        through_psql = _read(source, "styled", psql=True)
        assert through_psql == _read(source, "styled", psql=False)
    assert through_psql == [["01/01/2024 08:00:00 CST"], ["0.333333333333333"]]


def test_many_blocks_of_multiline_values_are_the_same(
    pg: tuple[str, psycopg.Connection[Any]],
) -> None:
    """About 4 MiB: values with quotes and line breaks cross pyarrow's 1 MiB blocks."""
    url, conn = pg
    conn.execute("DROP TABLE IF EXISTS big")
    conn.execute(
        "CREATE TABLE big AS SELECT i AS id, "
        "CASE WHEN i % 7 = 0 THEN NULL WHEN i % 11 = 0 THEN '' "
        "ELSE repeat('say \"hi\", then' || chr(10) || '客户' || chr(13), i % 5 + 1) END AS note, "
        "i * 1.5 AS amount FROM generate_series(1, 40000) i"
    )
    with SqlSource("pg", url) as source:
        through_psql = _read(source, "big", psql=True)
        assert through_psql == _read(source, "big", psql=False)
    assert len(through_psql[0]) == 40000
    assert through_psql[1][6] is None
    assert through_psql[1][10] == ""


def test_a_value_larger_than_a_block_is_read_whole(
    pg: tuple[str, psycopg.Connection[Any]],
) -> None:
    """A 2.4 MB value with line breaks and quotes, longer than two of pyarrow's 1 MiB blocks
    (the read failed: "straddling object straddles two block boundaries")."""
    url, conn = pg
    conn.execute("DROP TABLE IF EXISTS huge_cell")
    conn.execute(
        "CREATE TABLE huge_cell AS SELECT i AS id, CASE WHEN i = 5 "
        "THEN repeat('ab' || chr(10) || '\"c,', 400000) ELSE 'x' END AS doc "
        "FROM generate_series(1, 20) i"
    )
    with SqlSource("pg", url) as source:
        ids, docs = _read(source, "huge_cell", psql=True)
        assert [ids, docs] == _read(source, "huge_cell", psql=False)
    assert len(ids) == 20
    assert docs[4] == 'ab\n"c,' * 400_000


class _Started:
    """Records the psql processes sources.psql starts."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._popen = subprocess.Popen

    def __call__(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = self._popen(*args, **kwargs)
        self.procs.append(proc)
        return proc


@pytest.fixture
def started() -> Iterator[_Started]:
    spy = _Started()
    with mock.patch("retirement.sources.psql.subprocess.Popen", spy):
        yield spy


def _big_table(conn: psycopg.Connection[Any], name: str, rows: int = 300_000) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(
        f"CREATE TABLE {name} AS SELECT i AS id, md5(i::text) AS a, md5(i::text) AS b "
        f"FROM generate_series(1, {rows}) i"
    )


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_an_early_close_kills_and_reaps_psql(
    pg: tuple[str, psycopg.Connection[Any]], started: _Started
) -> None:
    url, conn = pg
    _big_table(conn, "early")
    with SqlSource("pg", url) as source:
        batches = source.arrow_batches("early", 100)
        assert batches is not None
        first = next(iter(batches))
        assert 0 < len(first[0]) < 300_000
        (proc,) = started.procs
        assert proc.poll() is None  # psql is still writing: the pipe is full
        batches.close()  # type: ignore[attr-defined]  (a generator)
        assert proc.returncode == -signal.SIGKILL
        assert _gone(proc.pid)


def test_psql_killed_midway_is_an_error_not_a_short_table(
    pg: tuple[str, psycopg.Connection[Any]], started: _Started
) -> None:
    url, conn = pg
    _big_table(conn, "midway")
    with SqlSource("pg", url) as source:
        batches = source.arrow_batches("midway", 100)
        assert batches is not None
        it = iter(batches)
        next(it)
        (proc,) = started.procs
        proc.kill()  # as if psql crashed
        with pytest.raises(SourceError, match=r"source pg: cannot read table midway with psql"):
            list(it)
        assert _gone(proc.pid)


@pytest.mark.parametrize("psql", [True, False])
def test_a_table_dropped_after_reflection_names_the_table(
    pg: tuple[str, psycopg.Connection[Any]], psql: bool
) -> None:
    url, conn = pg
    conn.execute("DROP TABLE IF EXISTS dropped")
    conn.execute("CREATE TABLE dropped (id integer)")
    with SqlSource("pg", url) as source:
        source.table("dropped")
        conn.execute("DROP TABLE dropped")
        with pytest.raises(
            SourceError,
            match=r'source pg: cannot read table dropped.*relation "dropped" does not exist',
        ):
            _read(source, "dropped", psql=psql)


def test_a_missing_privilege_is_psqls_message(
    pg: tuple[str, psycopg.Connection[Any]], started: _Started
) -> None:
    url, conn = pg
    role = f"rt_reader_{uuid.uuid4().hex[:8]}"
    conn.execute("DROP TABLE IF EXISTS secret")
    conn.execute("CREATE TABLE secret (id integer)")
    conn.execute("INSERT INTO secret VALUES (1)")
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        with (
            SqlSource("pg", url.replace("postgres@", f"{role}@", 1)) as source,
            pytest.raises(
                SourceError,
                match=r"source pg: cannot read table secret with psql \(exit status 3\): "
                r".*permission denied for table secret",
            ),
        ):
            _read(source, "secret", psql=True)
    finally:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
    (proc,) = started.procs
    assert _gone(proc.pid)
