"""CSV and TSV files as Arrow string columns: pyarrow's CSV reader, block by block.

The inventory's full scan reads a file this way instead of row by row (``csv.reader``, a
Python object per cell). The strings are the row path's, cell for cell: every column is
text, an empty field is the empty string, quotes and line breaks inside quoted fields as
``csv.reader`` reads them, the same encoding decision (UTF-8 with or without BOM, else
GB18030, on the first 64 KiB). Where the two could differ this returns None and the row
path reads the file: a header with a line break in it, a single column. A row with a field
too many or too few is the row path's error, with its row number: the file is read again
row by row up to it; so is a blank line (pyarrow reads it as a row of empty fields, which a
row of empty fields also is: the first such row has the file read row by row once).
"""

from __future__ import annotations

import codecs
from typing import IO, TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from retirement.errors import SourceError
from retirement.formats.csv_blocks import Utf8, WholeRecords
from retirement.sources.formats import prepended

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BLOCK_BYTES = 1 << 18  # pyarrow reads up to 32 blocks ahead: 8 MiB


def _an_empty_row(columns: list[pa.Array]) -> bool:
    """Some row has every field empty: a blank line reads so in pyarrow, and is an error
    (a row of no fields) in ``csv.reader``; or a row of empty fields, which both read."""
    empty = np.ones(len(columns[0]), dtype=bool)
    for column in columns:
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
        offsets = offsets[column.offset : column.offset + len(column) + 1]
        empty &= offsets[1:] == offsets[:-1]
    return bool(empty.any())


def _encoding(head: bytes) -> str:
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf8"


def csv_columns(
    raw: IO[bytes], header: list[str], delimiter: str, where: str, row_error: Callable[[], None]
) -> Iterator[list[pa.Array]] | None:
    """The file's rows after ``header`` (as the row path read it) in batches of Arrow string
    arrays, one per column; None where only the row path reads it exactly (see the module
    docstring). ``row_error`` reads the file row by row and raises the row path's error;
    ``where`` names the file in errors."""
    if len(header) < 2 or any("\n" in h or "\r" in h for h in header):
        return None  # one column, or a header that is not one line
    head = raw.read(65536)
    stream = prepended(head, raw)
    return _batches(stream, len(header), delimiter, _encoding(head), where, row_error)


def _batches(
    stream: IO[bytes],
    ncols: int,
    delimiter: str,
    encoding: str,
    where: str,
    row_error: Callable[[], None],
) -> Iterator[list[pa.Array]]:
    names = [f"c{i}" for i in range(ncols)]
    records = WholeRecords(stream if encoding == "utf8" else Utf8(stream, encoding))
    read = pacsv.ReadOptions(
        column_names=names, skip_rows=1, block_size=BLOCK_BYTES, use_threads=False
    )
    parse = pacsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False
    )
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
    )
    try:
        reader = pacsv.open_csv(
            records, read_options=read, parse_options=parse, convert_options=convert
        )
        checked = False
        for batch in reader:
            columns = list(batch.columns)
            if not checked and _an_empty_row(columns):
                row_error()  # a blank line is the row path's error; ",," is a row
                checked = True
            yield columns
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if "Empty CSV file" in str(exc):
            return
        row_error()  # the row path's own error, naming the row
        raise SourceError(f"{where}: cannot read as CSV: {exc}") from exc
