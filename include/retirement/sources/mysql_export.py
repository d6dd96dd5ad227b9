"""MySQL/MariaDB tables exported as the database formats them: the server writes each row as
one line of the backup's CSV (``formats.csv``: text quoted, NULL empty, bytes as ``\\x``
hex, times in ISO 8601) and mysqlclient, the C driver, hands over one string per row, so no
Python object is made per cell. What ``mysqldump`` does in C, with the backup's format.

Only tables whose every column has a type the server formats exactly as ``csv_field`` does
take this path (integers, DECIMAL, text, ENUM, dates, date-times, binary strings); a table
with a FLOAT, TIME, BIT, SET, JSON or other column is exported row by row as before
(``line_export`` returns None). Dates that are not real dates (``0000-00-00``, or
``2024-02-30`` where the SQL mode allows it) are written as the quoted text the row path
keeps them as. A row with a long text value holding a quote comes as its values in JSON
and its line is written here (:mod:`retirement.sources.mysql_lines`: MariaDB doubles quotes
in time quadratic in them). The same bytes either way: a model-based test compares both on
random tables.

The export runs in one REPEATABLE READ transaction with a consistent snapshot: the row
count, the null counts and the key range are read in the same snapshot as the rows."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.pool import NullPool

from retirement.errors import SourceError
from retirement.formats.csv import record_ends
from retirement.sources.mysql_lines import Field, Lines, fetched, our_sql_mode
from retirement.sources.pg_copy import CopyExport, RowsProfile
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from contextlib import AbstractContextManager

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource

FETCH_ROWS = 5000

_TEXT = (sa.String, sa.Text, sa.Enum)
_NUMBERS = (sa.Integer, sa.Numeric, mysql.YEAR)
_BINARY = (
    sa.LargeBinary,
    sa.BINARY,
    sa.VARBINARY,
    mysql.TINYBLOB,
    mysql.MEDIUMBLOB,
    mysql.LONGBLOB,
)
_ROW_BY_ROW = (mysql.SET, mysql.BIT, sa.Float, sa.Time, sa.Interval, sa.JSON, sa.Boolean)


def _kind(column: sa.Column[Any]) -> str | None:
    """How the server formats the column (None: it cannot format it as csv_field does)."""
    kind = column.type
    if isinstance(kind, _ROW_BY_ROW):
        return None
    if isinstance(kind, _BINARY):
        return "bytes"
    if isinstance(kind, _TEXT):
        return None if getattr(kind, "charset", None) == "binary" else "text"
    if isinstance(kind, _NUMBERS):
        return "number"
    if isinstance(kind, sa.DateTime):
        return "datetime"
    if isinstance(kind, sa.Date):
        return "date"
    return None


def _field(prep: Any, column: sa.Column[Any], kind: str) -> Field:
    """One column's field: text quoted (:mod:`retirement.sources.mysql_lines`), any other
    kind formatted here (NULL: the empty field)."""
    quoted = prep.quote(column.name)
    if kind == "text":
        return Field.of_text(column, quoted)
    if kind == "number":
        value = f"CAST({quoted} AS CHAR)"
    elif kind == "bytes":
        value = f"CONCAT('\\\\x', LOWER(HEX({quoted})))"
    elif kind == "date":
        value = date_or_text(quoted, f"DATE_FORMAT({quoted}, '%Y-%m-%d')")
    else:  # datetime: isoformat(), microseconds only when there are some
        value = date_or_text(
            quoted,
            f"CONCAT(DATE_FORMAT({quoted}, '%Y-%m-%dT%H:%i:%s'), IF(MICROSECOND({quoted}) = 0, "
            f"'', CONCAT('.', LPAD(MICROSECOND({quoted}), 6, '0'))))",
        )
    return Field(column.name, f"IFNULL({value}, '')", text=False)


# How long the joined lines of a batch may be (``TableLines.locked``); tests lower it.
JOINED_LIMIT = "@@max_allowed_packet"


class TableLines(Lines):
    """A table's backup lines: SQL selecting (the server's line with its line break, or the
    row's values as JSON), and the line of each row so selected."""

    def selected(self) -> tuple[str, str]:
        return self.columns(f"CONCAT({self.line()}, '\\n')")

    def text(self, rows: Iterable[Sequence[Any]]) -> list[str]:
        """Each row's line, line break included, from the two columns of :meth:`selected`."""
        return [line if line is not None else self.joined(js) + "\n" for line, js in rows]

    def locked(self, conn: sa.Connection, table: sa.Table, where: Any, order: list[str]) -> bytes:
        """The lines of the rows ``where`` selects, locked (FOR UPDATE), in the order of the
        ``order`` columns: what deletion compares with the backed-up lines before it deletes
        them. The server joins them into one value (``GROUP_CONCAT``: one value handed over,
        not a Python step per row). ``GROUP_CONCAT`` leaves out a row whose line is NULL (a
        long text with a quote, written from JSON; a line over ``max_allowed_packet``) and
        cuts the join at ``group_concat_max_len``; so unless the join holds one whole record
        for each row locked, the rows are read again one by one in the same transaction."""
        our_sql_mode(driver_connection(conn))
        prep = conn.dialect.identifier_preparer
        by = ", ".join(prep.quote(c) for c in order)
        line, costly = f"CONCAT({self.line()}, '\\n')", self.costly()
        if costly is not None:
            line = f"IF({costly}, NULL, {line})"
        conn.exec_driver_sql(f"SET SESSION group_concat_max_len = {JOINED_LIMIT}")
        whole: sa.Select[Any, Any] = sa.select(
            sa.literal_column(f"GROUP_CONCAT({line} ORDER BY {by} SEPARATOR '')"),
            sa.func.count(),
        )
        joined, rows = conn.execute(whole.select_from(table).where(where).with_for_update()).one()
        block = joined.encode("utf-8") if isinstance(joined, str) else bytes(joined or b"")
        if record_ends(block) == rows:  # each line holds one record end: none left out
            return block
        return self.locked_rows(conn, table, where, order)

    def locked_rows(
        self, conn: sa.Connection, table: sa.Table, where: Any, order: list[str]
    ) -> bytes:
        """:meth:`locked`, each row's line handed over on its own."""
        prep = conn.dialect.identifier_preparer
        line, json_values = self.selected()
        select: sa.Select[Any, Any] = sa.select(
            sa.literal_column(line), sa.literal_column(json_values)
        )
        got = conn.execute(
            select.select_from(table)
            .where(where)
            .order_by(*(sa.literal_column(prep.quote(c)) for c in order))
            .with_for_update()
        )
        return "".join(self.text(got.all())).encode("utf-8")


def _lines_of(prep: Any, columns: list[sa.Column[Any]], kinds: list[str]) -> TableLines:
    fields = (_field(prep, c, k) for c, k in zip(columns, kinds, strict=True))
    return TableLines(tuple(fields))


def line_sql(prep: Any, table: sa.Table) -> TableLines | None:
    """The SQL of a row's backup line as the server writes it (what ``line_export``
    selects), or None when a column's type needs the row path."""
    kinds = [_kind(c) for c in table.columns]
    if not kinds or any(k is None for k in kinds):
        return None
    return _lines_of(prep, list(table.columns), [k or "" for k in kinds])


def date_or_text(quoted: str, iso: str) -> str:
    """``iso`` for a real date; else the server's text, quoted (what the row path writes:
    the drivers give such a value as the text they received)."""
    real = (
        f"YEAR({quoted}) > 0 AND MONTH({quoted}) > 0 AND DAYOFMONTH({quoted}) > 0 "
        f"AND DAYOFMONTH({quoted}) <= DAYOFMONTH(LAST_DAY({quoted}))"
    )
    return f"IF({real}, {iso}, CONCAT('\"', CAST({quoted} AS CHAR), '\"'))"


def line_export(
    source: SqlSource, dataset: Named, key_column: str | None, *, blocks: bool = False
) -> AbstractContextManager[CopyExport] | None:
    """The table's CSV lines as the server makes them, ordered by its primary key, with the
    snapshot's counts and key range; None when a column's type needs the row path."""
    table = source.table(dataset)
    kinds = [_kind(c) for c in table.columns]
    if not kinds or any(k is None for k in kinds):
        return None
    return _exporting(source, dataset, table, [k or "" for k in kinds], key_column, blocks)


def export_url(source: SqlSource) -> sa.URL:
    """The source's URL for mysqlclient: the same server, account, database and TLS options
    (SQLAlchemy turns ``ssl_*`` into the driver's ``ssl`` for both drivers), and utf8mb4
    unless the connection names a charset, as PyMySQL defaults to (never latin1)."""
    url = source.engine_url().set(drivername="mysql+mysqldb")
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


@contextmanager
def _exporting(
    source: SqlSource,
    dataset: Named,
    table: sa.Table,
    kinds: list[str],
    key_column: str | None,
    blocks: bool,
) -> Iterator[CopyExport]:
    from MySQLdb import Error as DriverError

    engine = sa.create_engine(export_url(source), poolclass=NullPool, hide_parameters=True)
    columns = list(table.columns)
    key = table.c[key_column] if key_column is not None else None
    profile = [sa.func.count() - sa.func.count(c) for c in columns] + [sa.func.count()]
    limits = [sa.func.min(key), sa.func.max(key)] if key is not None else []
    try:
        with engine.connect() as conn:
            prep = conn.dialect.identifier_preparer
            our_sql_mode(driver_connection(conn))
            conn.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            values = conn.execute(sa.select(*profile, *limits)).one()
            n = len(columns)
            nulls, rows = tuple(int(v) for v in values[:n]), int(values[n])
            key_min, key_max = (values[n + 1], values[n + 2]) if limits else (None, None)
            keys = source.key_columns(dataset)
            order = f" ORDER BY {', '.join(prep.quote(k) for k in keys)}" if keys else ""
            table_lines = _lines_of(prep, columns, kinds)
            line, as_json = table_lines.selected()
            sql = f"SELECT {line}, {as_json} FROM {prep.format_table(table)}{order}"
            lines = (table_lines.text(part) for part in _lines(driver_connection(conn), sql))
            found = RowsProfile(nulls, key_min, key_max, rows)
            if blocks:
                yield CopyExport(None, _blocks(lines), lambda: found)
            else:
                yield CopyExport(_records(lines), None, lambda: found)
    except (sa.exc.SQLAlchemyError, DriverError) as exc:
        raise SourceError(
            f"source {source.name}: cannot read table {dataset}: {getattr(exc, 'orig', exc)}"
        ) from exc
    finally:
        engine.dispose()


def _lines(raw: Any, sql: str) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` through an unbuffered (server-side) cursor, FETCH_ROWS at a time
    or fewer (``mysql_lines.fetched``)."""
    from MySQLdb.cursors import SSCursor

    cursor = raw.cursor(SSCursor)
    try:
        cursor.execute(sql)
        yield from fetched(cursor, FETCH_ROWS)
    finally:
        cursor.close()


def _blocks(parts: Iterator[list[str]]) -> Iterator[bytes]:
    for part in parts:
        yield "".join(part).encode("utf-8")


def _records(parts: Iterator[list[str]]) -> Iterator[bytes]:
    for part in parts:
        for line in part:
            yield line.encode("utf-8")
