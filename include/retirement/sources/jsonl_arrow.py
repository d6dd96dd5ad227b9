"""JSON-lines files as Arrow string columns: pyarrow's JSON reader, a block of lines at a time.

The inventory's full scan reads a JSON-lines file this way instead of line by line
(``json.loads``, a Python object per cell), and the file's column list (every key, in order
of first appearance) is read the same way. The cells are the row path's
(``sources.formats``), cell for cell: a string as it is, an integer or ``true``/``false`` as
Python's ``str`` of it (``as_strings`` of the inventory casts them), a key left out as NULL.

The file is cut into blocks of whole lines (about ``BLOCK_BYTES``). pyarrow reads a block
when nothing in it could read differently from the row path; any other block is read line
by line with the row path's own functions (its errors, with their line numbers, are the row
path's). A block is read line by line when:

* pyarrow cannot read it (not JSON, not an object per line, a key twice in one object, a
  lone surrogate, invalid UTF-8, a key whose values are of two kinds);
* a column comes out as anything but text, integers, booleans or NULLs: a number with a
  fraction or an exponent (the row path keeps every digit the file has: ``1.10`` and
  ``1e400`` are not what a double says), or a nested object or array (the row path writes
  them back as JSON text);
* a line is blank, a line does not start with ``{`` and end with ``}``, a closing brace is
  followed on its line by anything an object cannot hold after one (two objects on a line),
  the rows are not as many as the lines, a carriage return ends a line on its own (the row
  path splits lines there), or a byte-order mark is inside the file. pyarrow's reader is
  handed nothing else: besides reading such blocks differently, pyarrow 26 crashes the
  process on a block that starts with ``null``.

A line that is not UTF-8 is an error naming it (the row path names where its decoder's
buffer stood).

A file whose first 64 KiB are not UTF-8 is GB18030 to the row path: it is read line by line.
"""

from __future__ import annotations

import io
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from retirement.errors import SourceError
from retirement.sources.formats import (
    closing_batches,
    json_cell,
    json_object,
    jsonl_row_keys,
    prepended,
    utf8_head,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

BLOCK_BYTES = 1 << 20
READERS = 2  # blocks parsed at once
_BOM = b"\xef\xbb\xbf"
# a blank line (the row path skips it: pyarrow's rows would no longer be the block's lines
# one for one)
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r]*\n")
# a carriage return not followed by a line feed: the row path ends a line there, pyarrow
# reads it as a space
_LONE_CR = re.compile(rb"\r(?!\n)")
# a closing brace followed by what may not follow one inside an object (another object or
# value on the same line); a brace inside a string may match too (read line by line)
_AFTER_OBJECT = re.compile(rb"\}[ \t]*[^ \t,\}\]\r\n]")
_LF, _CR, _OPEN, _CLOSE = b"\n\r{}"
_KINDS = (pa.types.is_string, pa.types.is_int64, pa.types.is_boolean, pa.types.is_null)


def _blocks(head: bytes, raw: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(number of the block's first line, the block's bytes: whole lines, about
    ``BLOCK_BYTES``), ``head`` having been read from ``raw`` (a byte-order mark at the start
    is left out, as the row path's decoder does)."""
    if _BOM.startswith(head):  # a file of part of a byte-order mark reads as empty
        head = b""
    line, carry, eof = 1, head.removeprefix(_BOM), False
    while carry or not eof:
        end = carry.rfind(b"\n", 0, BLOCK_BYTES) + 1 or carry.find(b"\n") + 1
        if not eof and (end == 0 or len(carry) < BLOCK_BYTES):
            more = raw.read(BLOCK_BYTES)
            eof, carry = not more, carry + more
            continue
        block, carry = carry[: end or len(carry)], carry[end or len(carry) :]
        yield line, block
        line += _lines_in(block)


def _lines_in(block: bytes) -> int:
    """How many lines the row path counts in ``block`` (universal newlines: a line ends at
    a line feed, a carriage return, or both together)."""
    ends = block.count(b"\n")
    if b"\r" in block:
        ends += len(_LONE_CR.findall(block))
    return ends + (not block.endswith((b"\n", b"\r")))


def _read(block: bytes) -> pa.Table | None:
    """The block as pyarrow reads it, or None where it could differ from the row path."""
    if _BOM in block or _BLANK_LINE.search(block) or _BLANK_FIRST_LINE.match(block):
        return None
    if b"\r" in block and _LONE_CR.search(block):
        return None
    if not _braced_lines(block) or _AFTER_OBJECT.search(block):
        return None  # not one object a line (pyarrow 26 crashes on a line that is null)
    options = pajson.ReadOptions(use_threads=False, block_size=max(len(block), 1 << 16))
    try:
        table = pajson.read_json(io.BytesIO(block), read_options=options)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.num_rows != _lines_in(block):
        return None  # an object over two lines, or two on one line
    try:
        for column, kind in zip(table.columns, table.schema.types, strict=True):
            if not any(test(kind) for test in _KINDS):
                return None
            if pa.types.is_string(kind):
                for chunk in column.chunks:
                    chunk.validate(full=True)  # UTF-8 (pyarrow's parser does not check)
    except (pa.ArrowInvalid, UnicodeDecodeError):  # a value, or a key, not UTF-8
        return None
    return table


def _braced_lines(block: bytes) -> bool:
    """Every line of ``block`` starts with ``{`` and ends with ``}`` (then its line end).

    No object can then run over a line end (after ``}`` JSON allows only ``,``, ``}`` or
    ``]`` inside an object, never ``{``), so each line holds whole objects: with as many rows
    as lines, one each."""
    body = block.removesuffix(b"\n").removesuffix(b"\r")
    if body[:1] != b"{" or body[-1:] != b"}":
        return False
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == _LF)  # none first or last: the body starts with { ends with }
    before = data[ends - 1]
    crlf = before == _CR
    before[crlf] = data[ends[crlf] - 2]
    return bool((before == _CLOSE).all() and (data[ends + 1] == _OPEN).all())


def _read_ahead(
    blocks: Iterator[tuple[int, bytes]],
) -> Iterator[tuple[int, bytes, pa.Table | None]]:
    """(first line, block, ``_read(block)``) in order, ``READERS`` blocks parsed at once on
    threads (pyarrow parses without the GIL): a few blocks in memory."""
    with ThreadPoolExecutor(READERS, thread_name_prefix="jsonl") as pool:
        pending: deque[tuple[int, bytes, Future[pa.Table | None]]] = deque()
        for first, block in blocks:
            pending.append((first, block, pool.submit(_read, block)))
            if len(pending) > READERS:
                done = pending.popleft()
                yield done[0], done[1], done[2].result()
        while pending:
            done = pending.popleft()
            yield done[0], done[1], done[2].result()


def jsonl_keys(raw: IO[bytes], where: str) -> list[str]:
    """Every key used in a JSON-lines file, in order of first appearance (one streaming
    pass): the row path's ``jsonl_row_keys`` answer, and its errors."""
    head = raw.read(65536)
    if not utf8_head(head):
        return jsonl_row_keys(prepended(head, raw), where)
    keys: dict[str, None] = {}
    for first, block, table in _read_ahead(_blocks(head, raw)):
        names = table.schema.names if table is not None else _row_keys(block, first, where)
        keys.update(dict.fromkeys(names))
    return list(keys)


def file_columns(
    open_file: Callable[[], IO[bytes]], names: Sequence[str] | None, where: str
) -> Iterator[list[pa.Array]] | None:
    """``jsonl_columns`` of the file ``open_file()`` opens (closed when the batches end or
    stop), for ``names`` (its keys as the source's ``schema`` gave them) or, where the
    caller has none, its keys read first (a pass of their own)."""
    if names is None:
        with open_file() as raw:
            names = jsonl_keys(raw, where)
    raw = open_file()
    return closing_batches(jsonl_columns(raw, list(names), where), raw)


def jsonl_columns(
    raw: IO[bytes], columns: list[str], where: str
) -> Iterator[list[pa.Array]] | None:
    """The file's rows in batches of Arrow arrays, one per name of ``columns`` (its
    ``jsonl_keys``): string, int64, bool or null arrays; None for a file the row path reads
    as GB18030 (read it row by row)."""
    head = raw.read(65536)
    if not utf8_head(head):
        return None
    return _batches(_blocks(head, raw), columns, where)


def _batches(
    blocks: Iterator[tuple[int, bytes]], columns: list[str], where: str
) -> Iterator[list[pa.Array]]:
    for first, block, table in _read_ahead(blocks):
        if table is None:
            yield _row_batch(block, first, columns, where)
            continue
        names = set(table.schema.names)  # a key not in ``columns`` is left out, as by rows
        yield [
            table.column(c).combine_chunks() if c in names else pa.nulls(table.num_rows)
            for c in columns
        ]


def _objects(block: bytes, first: int, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each line of ``block`` that is not blank, by the row path's
    functions, line by line (a line that is not UTF-8 is named)."""
    for n, raw_line in enumerate(block.splitlines(keepends=True), first):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{where}: line {n}: not UTF-8 ({exc.reason} at byte {exc.start + 1} of the "
                "line): the file's first 64 KiB are UTF-8, so the whole file must be"
            ) from exc
        if line.strip():
            yield n, json_object(line, where, n)


def _row_keys(block: bytes, first: int, where: str) -> Iterator[str]:
    for _n, obj in _objects(block, first, where):
        yield from obj


def _row_batch(block: bytes, first: int, columns: list[str], where: str) -> list[pa.Array]:
    """A block read line by line as the row path reads it, as string arrays."""
    objects = _objects(block, first, where)
    rows = [[json_cell(obj.get(c), where, n) for c in columns] for n, obj in objects]
    return [
        pa.array([_as_text(row[i]) for row in rows], type=pa.string()) for i in range(len(columns))
    ]


def _as_text(value: object) -> str | None:
    """A row path value as the inventory's ``to_strings`` writes it (``str`` of a number)."""
    return value if value is None or isinstance(value, str) else str(value)
