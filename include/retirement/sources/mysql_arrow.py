"""A MySQL/MariaDB table as Arrow string columns, for the inventory's full scan: the server
writes each row as one CSV line of exactly the strings the row path makes (``str`` of each
value the driver returns), mysqlclient (the C driver) hands the lines over as bytes, and
pyarrow's CSV reader parses each batch of lines into columns in C. One Python object per row
(the line), none per cell; a row with a long text value holding a quote comes as its values
in JSON, its line written in Python (:mod:`retirement.sources.mysql_lines`).

Only tables whose every column the server can write as the row path's string take this path:

* text (CHAR, VARCHAR, TEXT, ENUM; not a binary character set): the value, quoted, so that
  NULL (an unquoted empty field) and '' (``""``) stay apart; converted to utf8mb4 on the
  server where the column's character set is not already UTF-8;
* integers (and YEAR): ``CAST(... AS CHAR)``, the same digits as ``str(int)``;
* DECIMAL with at most 6 decimal places: ``CAST(... AS CHAR)``, which is ``str(Decimal)``
  (with 7 or more, Python writes small values with an exponent, ``1E-7``);
* DATE, DATETIME and TIMESTAMP: ``str(date)`` / ``str(datetime)`` (microseconds only when
  there are some); a date that is not a real date as the server's text, which is what the
  driver gives for it.

A table with any other column (FLOAT, DOUBLE, TIME, BIT, SET, JSON, binary strings, DECIMAL
with more decimal places) returns None and is read row by row. A model-based test holds the
two paths equal on random tables.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.pool import NullPool

from retirement.errors import SourceError
from retirement.sources.mysql_export import date_or_text, export_url
from retirement.sources.mysql_lines import Field, Lines, fetched, our_sql_mode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource

_OTHER = (
    mysql.SET,
    mysql.BIT,
    sa.Float,
    sa.Time,
    sa.Interval,
    sa.JSON,
    sa.Boolean,
    sa.LargeBinary,
    sa.BINARY,
    sa.VARBINARY,
)
_UTF8 = ("utf8mb4", "utf8mb3", "utf8", "ascii")  # already UTF-8 bytes
DECIMAL_PLACES = 6  # str(Decimal) has no exponent up to here


def _field(column: sa.Column[Any], quoted: str, charset: str | None) -> Field | None:
    """The column as the row path's string in a CSV field (text quoted, NULL the empty
    field); None where the server cannot write it. ``charset``: the column's character set."""
    kind = column.type
    if isinstance(kind, _OTHER):
        return None
    if isinstance(kind, sa.String | sa.Enum):  # Text and the mysql text types are Strings
        if charset == "binary" or getattr(kind, "charset", None) == "binary":
            return None
        if charset not in _UTF8:  # (converting costs the server a third more time)
            quoted = f"CONVERT({quoted} USING utf8mb4)"
        return Field.of_text(column, quoted)
    if isinstance(kind, sa.Integer | mysql.YEAR):
        value = f"CAST({quoted} AS CHAR)"
    elif isinstance(kind, sa.Numeric):
        if (kind.scale or 0) > DECIMAL_PLACES:
            return None
        value = f"CAST({quoted} AS CHAR)"
    elif isinstance(kind, sa.DateTime):
        value = date_or_text(
            quoted,
            f"CONCAT(DATE_FORMAT({quoted}, '%Y-%m-%d %H:%i:%s'), IF(MICROSECOND({quoted}) = 0, "
            f"'', CONCAT('.', LPAD(MICROSECOND({quoted}), 6, '0'))))",
        )
    elif isinstance(kind, sa.Date):
        value = date_or_text(quoted, f"DATE_FORMAT({quoted}, '%Y-%m-%d')")
    else:
        return None
    return Field(column.name, f"IFNULL({value}, '')", text=False)


def line_columns(
    source: SqlSource, dataset: Named, batch_rows: int
) -> Iterator[list[pa.Array]] | None:
    """Every row of ``dataset`` as one Arrow string array per column, ``batch_rows`` rows a
    batch; None when a column's type needs the row path."""
    table = source.table(dataset)
    prep = mysql.dialect().identifier_preparer
    charsets = _charsets(source, dataset)
    fields = [_field(c, prep.quote(c.name), charsets.get(c.name)) for c in table.columns]
    if not fields or any(f is None for f in fields):
        return None
    lines = Lines(tuple(f for f in fields if f is not None))
    line, values = lines.columns(f"CAST({lines.line()} AS BINARY)")
    sql = f"SELECT {line}, {values} FROM {prep.format_table(table)}"
    names = [c.name for c in table.columns]
    return _reading(source, dataset, sql, names, lines, batch_rows)


def _charsets(source: SqlSource, dataset: Named) -> dict[str, str | None]:
    """Each text column's character set (as information_schema has it)."""
    query = sa.text(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"
    )
    params = {"s": source.db_schema, "t": source.table_name(dataset)}
    with (
        source.errors(f"source {source.name}: reading the columns of {dataset}"),
        source.connect() as conn,
    ):
        rows = conn.execute(query, params).all()
    return {str(name): None if cs is None else str(cs).lower() for name, cs in rows}


def _reading(
    source: SqlSource, dataset: Named, sql: str, names: list[str], lines: Lines, batch_rows: int
) -> Iterator[list[pa.Array]]:
    from MySQLdb import Error as DriverError
    from MySQLdb.cursors import SSCursor

    where = f"source {source.name}: cannot read table {dataset}"
    options = {
        # a one-column table's NULL is an empty line: a row, not a line to skip
        "parse_options": pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        "convert_options": pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    }
    url = export_url(source).update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
    finished = False
    try:
        conn = engine.raw_connection()
        try:
            our_sql_mode(conn.driver_connection)
            cursor = conn.driver_connection.cursor(SSCursor)  # type: ignore[union-attr]
            cursor.execute(sql)
            for part in fetched(cursor, batch_rows):
                made = [b if b is not None else lines.joined(js).encode() for b, js in part]
                block = b"\n".join(made) + b"\n"
                # one block: pyarrow's own (1 MiB) fail a longer value and cut \r\n apart
                whole = pacsv.ReadOptions(
                    column_names=names, use_threads=False, block_size=len(block) + 1
                )
                batch = pacsv.read_csv(io.BytesIO(block), read_options=whole, **options)
                if batch.num_rows != len(part):  # one line a row, as the server wrote them
                    raise SourceError(
                        f"{where}: the server sent {len(part)} rows, their CSV lines parsed "
                        f"as {batch.num_rows}: nothing of this table is counted"
                    )
                yield [c.combine_chunks() for c in batch.columns]
            cursor.close()
            finished = True
        finally:
            if finished:
                conn.close()
            else:  # stopped early: close the socket, not read the rest of the result
                conn.invalidate()
    except (sa.exc.SQLAlchemyError, DriverError, pa.ArrowInvalid) as exc:
        raise SourceError(f"{where}: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()
