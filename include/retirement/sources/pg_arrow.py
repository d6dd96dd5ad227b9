"""A PostgreSQL table as Arrow string columns: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``
parsed by pyarrow's CSV reader, block by block.

Where ``psql`` is installed it runs the COPY (``sources.psql``: our connection's parameters
and session output settings) and its output pipe goes to pyarrow as it is: pyarrow reads it
in 1 MiB blocks (about 7,500 rows of a 10-column table) and parses each into columns in C,
while psql works on another core. No Python call is made per row, nor object per cell.
Without psql, the driver's COPY: PostgreSQL sends one CopyData message per row and
:class:`_CopyStream` joins them into one byte stream (a Python call per row). The text is the
same either way. Memory stays a couple of blocks whatever the table's size. NULL is an
unquoted empty field and the empty string a quoted one (``""``): they stay apart.

psql is killed and reaped when the reader stops early (the generator is closed) or fails;
psql's own failure (a table dropped meanwhile, a privilege missing) is a SourceError naming
the source, the table and psql's message.
"""

from __future__ import annotations

import io
import shutil
from typing import IO, TYPE_CHECKING

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from retirement.errors import SourceError
from retirement.formats.csv_blocks import WholeRecords
from retirement.sources.psql import output_settings, psql_copy, psql_env
from retirement.sources.sql import driver_connection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from psycopg import Copy

    from retirement.sources.base import Named
    from retirement.sources.sql import SqlSource

BLOCK_BYTES = 1 << 18  # pyarrow reads up to 32 blocks ahead: 8 MiB


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
    """Every row of ``dataset`` in batches of Arrow string arrays, one per column: through
    psql where it is installed, else through the driver's COPY."""
    table = source.table(dataset)
    names = [c.name for c in table.columns]
    where = f"source {source.name}: cannot read table {dataset}"
    psql = shutil.which("psql")
    with source.connect() as conn:
        prep = conn.dialect.identifier_preparer
        select = f"SELECT {', '.join(prep.quote(n) for n in names)} FROM {source.quoted(dataset)}"
        copy_sql = f"COPY ({select}) TO STDOUT WITH (FORMAT csv)"
        raw = driver_connection(conn)
        if psql is None:
            try:
                with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    yield from _columns(_CopyStream(copy), names, where)
            except psycopg.Error as exc:
                raise SourceError(f"{where}: {exc}") from exc
            return
        script = "\n".join([*output_settings(conn), f"{copy_sql};", ""]).encode()
        env = psql_env(raw)
    # the connection is back in the pool while psql reads in its own session
    with psql_copy(psql, script, env, where) as run:
        try:
            yield from _columns(run.stdout, names, where)
        except SourceError:
            run.stopped_by_failure()  # psql's own failure explains a cut-off output
            raise
        run.finish()


def _columns(
    stream: IO[bytes] | _CopyStream, names: list[str], where: str
) -> Iterator[list[pa.Array]]:
    """The CSV of ``stream`` (no header; NULL unquoted empty, '' quoted) as string columns."""
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    read = pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES, use_threads=False)
    # a one-column table's NULL is an empty line: a row, not a line to skip
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
    try:
        reader = pacsv.open_csv(
            WholeRecords(stream), read_options=read, parse_options=parse, convert_options=options
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return
        raise SourceError(f"{where}: {exc}") from exc
    try:
        for batch in reader:
            yield list(batch.columns)
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{where}: {exc}") from exc
