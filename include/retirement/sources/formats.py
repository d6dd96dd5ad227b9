"""Tabular file formats read as streams of rows: CSV, JSON lines, Parquet, XLSX.

Each reader takes a binary file object (seekable for Parquet and XLSX) and yields the header
once, then rows; nothing reads a whole file into memory. Other files are opaque documents.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from decimal import Decimal
from itertools import zip_longest
from typing import IO, TYPE_CHECKING, Any
from zipfile import BadZipFile

from retirement.errors import SourceError

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
    encoding = "utf-8-sig" if utf8_head(head) else "gb18030"
    return io.TextIOWrapper(prepended(head, raw), encoding=encoding, newline="")


def utf8_head(head: bytes) -> bool:
    """Whether a file whose first 64 KiB are ``head`` is read as UTF-8 (else GB18030)."""
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


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


def closing_batches(
    batches: Iterator[list[pa.Array]] | None, raw: IO[bytes]
) -> Iterator[list[pa.Array]] | None:
    """``batches`` read from ``raw``, which is closed when they end or the reader stops;
    None, ``raw`` closed, where there are none."""
    if batches is None:
        raw.close()
        return None
    return _closing(batches, raw)


def _closing(batches: Iterator[list[pa.Array]], raw: IO[bytes]) -> Iterator[list[pa.Array]]:
    try:
        yield from batches
    finally:
        raw.close()


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
            yield from _xlsx(raw, sheet, where)
        else:
            raise SourceError(f"{where}: not a tabular format: {fmt}")
    except (csv.Error, UnicodeDecodeError, ValueError, OSError, KeyError, BadZipFile) as exc:
        raise SourceError(f"{where}: cannot read as {fmt}: {exc}") from exc


def jsonl_row_keys(raw: IO[bytes], where: str) -> list[str]:
    """Every key used in a JSON-lines file, in order of first appearance (one streaming pass,
    line by line: the reference ``sources.jsonl_arrow.jsonl_keys`` answers as)."""
    keys: dict[str, None] = {}
    try:
        for n, line in enumerate(_text(raw), 1):
            if line.strip():
                keys.update(dict.fromkeys(json_object(line, where, n)))
    except UnicodeDecodeError as exc:
        raise SourceError(f"{where}: cannot read as jsonl: {exc}") from exc
    return list(keys)


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (``json.loads`` keeps a repeated key's last
    value only: the others would be in no backup)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return found


def _exact_number(text: str) -> float | Decimal:
    """A JSON number with a fraction or exponent: a float where the float says the same
    number, else a Decimal (``1234567890.123456789012`` as a float would lose digits)."""
    value = float(text)
    return value if Decimal(repr(value)) == Decimal(text) else Decimal(text)


def json_object(line: str, where: str, n: int) -> dict[str, Any]:
    """One line of a JSON-lines file as an object, every value kept exactly; SourceError
    naming the line where that cannot be."""
    try:
        value = json.loads(line, parse_float=_exact_number, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: line {n}: not JSON: {exc.msg}") from exc
    except _RepeatedKeyError as exc:
        raise SourceError(
            f"{where}: line {n}: the key {exc.key!r} appears twice in one object: a backup "
            "would keep only one of its values; fix the file before retiring it"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise SourceError(f"{where}: line {n}: not readable as JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceError(f"{where}: line {n}: expected a JSON object per line")
    if _SURROGATE_ESCAPE.search(line) and not _utf8(value):
        raise SourceError(
            f"{where}: line {n}: a string holds half of a surrogate pair (an escape such as "
            "\\ud800 without its other half), which is no character and cannot be kept in "
            "UTF-8: fix the file before retiring it"
        )
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _utf8(value: object) -> bool:
    """Every string in a parsed JSON value (keys too) can be written as UTF-8."""
    if isinstance(value, dict):
        return all(_utf8(k) and _utf8(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_utf8(v) for v in value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _jsonl(raw: IO[bytes], where: str, columns: list[str] | None) -> Iterator[list[Any]]:
    if columns is None:
        raise SourceError(f"{where}: JSON lines need their column list")
    yield list(columns)
    for n, line in enumerate(_text(raw), 1):
        if line.strip():
            obj = json_object(line, where, n)
            yield [json_cell(obj.get(c), where, n) for c in columns]


def json_cell(value: object, where: str, n: int) -> object:
    """A top-level value as it is; a nested one as its JSON text."""
    if not isinstance(value, dict | list):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError as exc:  # a Decimal inside: JSON text cannot be written from it exactly
        raise SourceError(
            f"{where}: line {n}: a number inside a nested value has more digits than a "
            "double holds and would not be kept exactly: retire this file as a document"
        ) from exc


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


def _xlsx(raw: IO[bytes], sheet: str | None, where: str) -> Iterator[list[Any]]:
    """A sheet's saved values, row by row, read beside its formulas: a formula whose value
    the workbook did not save (written by a program that computes nothing, openpyxl
    among them) would be an empty cell in the backup, so it refuses the file instead."""
    import openpyxl

    book = openpyxl.load_workbook(raw, read_only=True, data_only=True)
    formulas = openpyxl.load_workbook(raw, read_only=True, data_only=False)  # zip reads seek
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        wf = formulas[ws.title]
        # a sheet's stored <dimension> can be smaller than its cells (several writers leave it
        # stale); read-only mode trusts it and would leave rows and columns out of the backup
        ws.reset_dimensions()
        wf.reset_dimensions()
        pairs = zip_longest(ws.iter_rows(values_only=True), wf.iter_rows(values_only=True))
        for n, (values, written) in enumerate(pairs, 1):
            row = list(values or ())
            _saved_values(row, written or (), f"{where}: sheet {ws.title!r}", n)
            if n == 1:
                row = [str(h) if h is not None else f"column_{i + 1}" for i, h in enumerate(row)]
            yield row
    finally:
        book.close()
        formulas.close()


def _saved_values(values: list[Any], written: tuple[Any, ...], where: str, n: int) -> None:
    """SourceError naming the first cell of row ``n`` that holds a formula without a value."""
    from openpyxl.utils import get_column_letter

    for i, formula in enumerate(written):
        if (
            isinstance(formula, str)
            and formula.startswith("=")
            and (i >= len(values) or values[i] is None)
        ):
            raise SourceError(
                f"{where}: cell {get_column_letter(i + 1)}{n} holds the formula {formula[:40]!r} "
                "but the workbook saved no value for it, so the backup would hold an empty "
                "cell: open and save the workbook in a spreadsheet program (which stores the "
                "values), then re-run"
            )
