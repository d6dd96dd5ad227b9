"""A PostgreSQL table as Arrow string columns: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``
parsed by pyarrow's CSV reader, block by block.

PostgreSQL sends one CopyData message per row; :class:`_CopyStream` hands them to pyarrow as
one byte stream, and pyarrow parses each block (1 MiB, about 7,500 rows of a 10-column
table) into columns in C. No Python object is made per cell, and memory stays a couple of
blocks whatever the table's size. NULL is an unquoted empty field and the empty string a
quoted one (``""``): they stay apart.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from retirement.errors import SourceError
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from psycopg import Copy

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource

BLOCK_BYTES = 1 << 20


class _CopyStream(io.RawIOBase):
    """COPY's rows as a readable byte stream (rows joined until a read is satisfied)."""

    def __init__(self, copy: Copy) -> None:
        self._read = copy.read
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        parts = [self._rest] if self._rest else []
        size = len(self._rest)
        while size < want and (row := self._read()):
            parts.append(bytes(row))
            size += len(row)
        data = b"".join(parts)
        n = min(want, len(data))
        buffer[:n] = data[:n]
        self._rest = data[n:]
        return n


def copy_columns(source: SqlSource, dataset: Named) -> Iterator[list[pa.Array]]:
    """Every row of ``dataset`` in batches of Arrow string arrays, one per column."""
    table = source.table(dataset)
    names = [c.name for c in table.columns]
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    read = pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES, use_threads=False)
    # a one-column table's NULL is an empty line: a row, not a line to skip
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
    with source.connect() as conn:
        prep = conn.dialect.identifier_preparer
        select = f"SELECT {', '.join(prep.quote(n) for n in names)} FROM {source.quoted(dataset)}"
        raw = driver_connection(conn)
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)") as copy,
        ):
            try:
                reader = pacsv.open_csv(
                    _CopyStream(copy),
                    read_options=read,
                    parse_options=parse,
                    convert_options=options,
                )
            except pa.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    return
                raise SourceError(f"source {source.name}: cannot read {dataset}: {exc}") from exc
            for batch in reader:
                yield list(batch.columns)
