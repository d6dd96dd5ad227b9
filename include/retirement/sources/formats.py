"""Tabular file formats read as streams of rows: CSV, JSON lines, Parquet, XLSX.

Each reader takes a binary file object (seekable for Parquet and XLSX) and yields the header
once, then rows; nothing reads a whole file into memory. Other files are opaque documents.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import IO, TYPE_CHECKING, Any

from retirement.errors import SourceError
from retirement.formats.json_object import json_object

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from _typeshed import WriteableBuffer

TABULAR = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}
csv.field_size_limit(64 * 1024 * 1024)


def format_of(name: str) -> str | None:
    """The tabular format of a file name, or None for an opaque document."""
    dot = name.rfind(".")
    return TABULAR.get(name[dot:].lower()) if dot >= 0 else None


def _text(raw: IO[bytes]) -> IO[str]:
    """UTF-8 (with or without BOM), falling back to GB18030, decided on the first 64 KiB."""
    head = raw.read(65536)
    encoding = "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        encoding = "gb18030"
    return io.TextIOWrapper(prepended(head, raw), encoding=encoding, newline="")


def prepended(head: bytes, raw: IO[bytes]) -> IO[bytes]:
    """``raw`` from its start again, ``head`` having been read from it."""
    if raw.seekable():
        raw.seek(0)
        return raw
    return io.BufferedReader(_Prepend(head, raw))


class _Prepend(io.RawIOBase):
    """A non-seekable stream with bytes already read put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        buf = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def read_rows(
    fmt: str,
    raw: IO[bytes],
    *,
    where: str,
    sheet: str | None = None,
    columns: list[str] | None = None,
) -> Iterator[list[Any]]:
    """Yield the header (a list of column names), then each row as a list of values.

    ``columns`` fixes the header for JSON lines (keys in that order); ``where`` names the
    file in errors.
    """
    try:
        if fmt in ("csv", "tsv"):
            reader = csv.reader(_text(raw), delimiter="\t" if fmt == "tsv" else ",")
            yield from reader
        elif fmt == "jsonl":
            yield from _jsonl(raw, where, columns)
        elif fmt == "parquet":
            yield from _parquet(raw)
        elif fmt == "xlsx":
            yield from _xlsx(raw, sheet)
        else:
            raise SourceError(f"{where}: not a tabular format: {fmt}")
    except (csv.Error, UnicodeDecodeError, ValueError, OSError, KeyError) as exc:
        raise SourceError(f"{where}: cannot read as {fmt}: {exc}") from exc


def jsonl_keys(raw: IO[bytes], where: str) -> list[str]:
    """Every key used in a JSON-lines file, in order of first appearance (one streaming pass)."""
    keys: dict[str, None] = {}
    for n, line in enumerate(_text(raw), 1):
        if line.strip():
            obj = _json_object(line, where, n)
            keys.update(dict.fromkeys(obj))
    return list(keys)


def _json_object(line: str, where: str, n: int) -> dict[str, Any]:
    return json_object(
        line,
        not_json=lambda why: f"{where}: line {n}: not JSON: {why}",
        not_object=f"{where}: line {n}: expected a JSON object per line",
    )


def _jsonl(raw: IO[bytes], where: str, columns: list[str] | None) -> Iterator[list[Any]]:
    if columns is None:
        raise SourceError(f"{where}: JSON lines need their column list")
    yield list(columns)
    for n, line in enumerate(_text(raw), 1):
        if line.strip():
            obj = _json_object(line, where, n)
            yield [_scalar(obj.get(c)) for c in columns]


def _scalar(value: object) -> object:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _parquet(raw: IO[bytes]) -> Iterator[list[Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(raw)
    yield list(pf.schema_arrow.names)
    for batch in pf.iter_batches(batch_size=10_000):
        cols = [col.to_pylist() for col in batch.columns]
        yield from (list(row) for row in zip(*cols, strict=True))


def parquet_batches(raw: IO[bytes], batch_rows: int) -> Iterator[list[pa.Array]]:
    """A Parquet file's rows as Arrow arrays, one per column, ``batch_rows`` rows a batch
    (row groups are read one at a time: memory stays a batch)."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(raw).iter_batches(batch_size=batch_rows):
        yield list(batch.columns)


def xlsx_sheets(raw: IO[bytes]) -> list[str]:
    import openpyxl

    book = openpyxl.load_workbook(raw, read_only=True, data_only=True)
    try:
        return list(book.sheetnames)
    finally:
        book.close()


def _xlsx(raw: IO[bytes], sheet: str | None) -> Iterator[list[Any]]:
    import openpyxl

    book = openpyxl.load_workbook(raw, read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        yield [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
        yield from (list(r) for r in rows)
    finally:
        book.close()
