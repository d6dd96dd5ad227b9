"""A MySQL/MariaDB row as one CSV line, written by the server, with text quoted in time
linear in its length.

The server quotes a text value as ``"..."`` with each ``"`` doubled. MariaDB's ``REPLACE``
does that by moving the rest of the value along for every quote it doubles (and
``REGEXP_REPLACE`` is no faster): time grows with quotes x length, so 200 values of 27 KB
holding 5,000 quotes each took 7.5 s, one 1.2 MB value of 400,000 quotes over a minute, where
``JSON_ARRAY`` of the same values takes 0.07 s. Values like that are common: JSON documents
in TEXT or JSON columns, e-mail bodies.

So a row with a long text value holding a quote (``LONG_TEXT`` bytes or more) is not
quoted by the server: it sends the row's values as one ``JSON_ARRAY`` (escaped in one pass)
and :meth:`Lines.joined` writes the line here, the same bytes the server would have written
(Python's ``str.replace`` runs in linear time, in C). Every other row is the server's line;
a shorter value with quotes costs ``REPLACE`` at most about ``LONG_TEXT`` squared. A
model-based test holds both ways equal to the row path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.errors import SourceError

if TYPE_CHECKING:
    from collections.abc import Iterator

# A fetch from the server holds at most this many bytes of lines (about: measured on the
# last one): 5,000 rows of 16 KB documents held 800 MB.
FETCH_BYTES = 8 << 20
FIRST_FETCH = 100
# Text values this long (bytes) or longer holding a quote send their row as JSON; tests
# lower it to send every row with a quote that way. REPLACE on a shorter value moves at most
# about 1 MB (all quotes), a JSON document of this size about 0.1 MB: a few microseconds,
# what a row through Python costs. Columns that cannot hold this many bytes (VARCHAR(255)
# and shorter in utf8mb4) are not even tested: the test costs the server time on every row.
LONG_TEXT = 1024


# sql_mode flags under which the server writes other lines than the row path (found by
# review): '\n' read as two characters (NO_BACKSLASH_ESCAPES), '' read as NULL
# (EMPTY_STRING_IS_NULL), Oracle's parser (ORACLE), || as CONCAT (PIPES_AS_CONCAT).
FOREIGN_MODES = frozenset(
    {"NO_BACKSLASH_ESCAPES", "EMPTY_STRING_IS_NULL", "ORACLE", "PIPES_AS_CONCAT"}
)


def our_sql_mode(raw: Any) -> None:
    """Drop the session's sql_mode flags that change what the lines' SQL writes (``raw``: a
    driver connection); the others stay (ANSI_QUOTES, which the dialect's quoting of names
    follows, included)."""
    cursor = raw.cursor()
    try:
        cursor.execute("SELECT @@SESSION.sql_mode")
        (mode,) = cursor.fetchone()
        text = mode.decode() if isinstance(mode, bytes) else str(mode)
        flags = [m for m in text.split(",") if m]
        kept = [m for m in flags if m not in FOREIGN_MODES]
        if len(kept) != len(flags):
            cursor.execute("SET SESSION sql_mode = %s", (",".join(kept),))
    finally:
        cursor.close()


def fetched(cursor: Any, rows: int) -> Iterator[list[tuple[Any, ...]]]:
    """An unbuffered cursor's rows of (line, values), ``rows`` at a time or fewer: the first
    fetch takes ``FIRST_FETCH`` rows, each next one as many as would hold about
    ``FETCH_BYTES`` were they as wide as the last fetch's (rows that suddenly grow far wider
    can still make one large fetch, at most ``rows`` of them, as before)."""
    size = min(rows, FIRST_FETCH)
    while part := cursor.fetchmany(size):
        yield part
        held = sum(len(line) if line is not None else len(values) for line, values in part)
        size = max(1, min(rows, FETCH_BYTES * len(part) // max(1, held)))


def quoted_text(value: str) -> str:
    """SQL quoting the text ``value`` as a CSV field: ``"..."``, each ``"`` doubled."""
    return f"CONCAT('\"', REPLACE({value}, '\"', '\"\"'), '\"')"


@dataclass(frozen=True)
class Field:
    """One column on the line: ``sql`` is either a text value (``text``: quoted on the line,
    NULL written as the empty field) or the field the server formats whole (never NULL).
    ``long``: a text column that can hold ``LONG_TEXT`` bytes (TEXT, JSON, a long VARCHAR)."""

    name: str
    sql: str
    text: bool
    long: bool = False

    @classmethod
    def of_text(cls, column: Any, sql: str) -> Field:
        """The text column ``column`` (SQLAlchemy's) on the line, as ``sql``."""
        length = getattr(column.type, "length", None)  # characters, up to 4 bytes each
        return cls(column.name, sql, text=True, long=length is None or length * 4 >= LONG_TEXT)


@dataclass(frozen=True)
class Lines:
    """The SQL selecting a table's rows as CSV lines, and the lines made from what it sends."""

    fields: tuple[Field, ...]

    def line(self) -> str:
        """SQL: the row's line, every field written by the server (no line break)."""
        parts = [f"IFNULL({quoted_text(f.sql)}, '')" if f.text else f.sql for f in self.fields]
        return f"CONCAT_WS(',', {', '.join(parts)})"

    def costly(self) -> str | None:
        """SQL: whether a row holds a long text value with a quote (its line is then written
        from its values as JSON); None where no column can hold a long value."""
        long = [
            # the bytes searched: a collation's LOCATE costs more than REPLACE itself
            f"(LENGTH({f.sql}) >= {LONG_TEXT} AND CAST({f.sql} AS BINARY) LIKE '%\"%')"
            for f in self.fields
            if f.long
        ]
        return " OR ".join(long) if long else None

    def columns(self, line: str) -> tuple[str, str]:
        """SQL: two columns, ``line`` (the row's line as the caller wraps :meth:`line`) or
        NULL where a long text value holds a quote, and then the row's values as JSON (NULL
        where the line is there)."""
        costly = self.costly()
        if costly is None:  # no column can hold a long value: every line is the server's
            return line, "NULL"
        values = ", ".join(
            # as a string even from a JSON column (JSON_ARRAY would nest its document)
            f"CAST({f.sql} AS CHAR CHARACTER SET utf8mb4)" if f.text else f.sql
            for f in self.fields
        )
        as_json = f"IF({costly}, JSON_ARRAY({values}), NULL)"
        # The line wherever the JSON is NULL: no long quoted text, or JSON larger than the
        # server's max_allowed_packet (its escapes make a value up to six times longer).
        return f"IF({as_json} IS NULL, {line}, NULL)", as_json

    def joined(self, values: str | bytes | None) -> str:
        """The line the server writes for a row (no line break) from its values as JSON."""
        if values is None:  # neither the line nor the JSON: larger than the server allows
            raise SourceError(
                "the server sent NULL for a row's line: it is larger than its "
                "max_allowed_packet; raise max_allowed_packet (server and client) to read it"
            )
        parsed = json.loads(values)
        if not isinstance(parsed, list) or len(parsed) != len(self.fields):
            raise SourceError(f"the server sent a row as {str(values)[:80]!r}, not its values")
        out = []
        for field, value in zip(self.fields, parsed, strict=True):
            if field.text and value is None:
                out.append("")
            elif not isinstance(value, str):
                raise SourceError(f"column {field.name}: the server sent {value!r}, not its text")
            else:
                out.append('"' + value.replace('"', '""') + '"' if field.text else value)
        return ",".join(out)
