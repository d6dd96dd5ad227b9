"""PostgreSQL's CSV dialect, which every backup is written in (docs/backup.md).

UTF-8, a header row, every text value quoted, NULL an empty unquoted field, bytes as ``\\x``
hex: ``psql \\copy ... CSV HEADER`` loads it. Also the readers a restore and a deletion
check use: records split on unquoted newlines, fields parsed with NULL told from ``""``,
and an order-independent digest of the rows.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from retirement.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


def csv_field(value: object) -> str:
    """One value in PostgreSQL's CSV dialect (text always quoted, NULL empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return '"' + str(value).replace('"', '""') + '"'


def csv_line(row: Iterable[object]) -> bytes:
    return (",".join(map(csv_field, row)) + "\n").encode("utf-8")


_MOD = 1 << 256

# How a fingerprint's row digest was computed (the manifest says which; absent: SUM).
SUM_METHOD = "sha256-sum"  # sum mod 2^256 of each record's SHA-256: any order
KEY_ORDER_METHOD = "sha256-key-order"  # SHA-256 of the records in primary-key order
# SHA-256 of the whole plaintext (header line, then the records in primary-key order): the
# manifest's plaintext_sha256 itself, so the bytes are hashed once, not twice.
PLAINTEXT_METHOD = "sha256-plaintext"
ORDERED_METHODS = (KEY_ORDER_METHOD, PLAINTEXT_METHOD)  # rows in primary-key order


class RowDigest:
    """An order-independent digest of rows: the sum mod 2^256 of each line's SHA-256."""

    method = SUM_METHOD

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0  # reduced mod 2^256 when read: the sum grows by a bit per doubling

    def add(self, line: bytes) -> None:
        self._sum += int.from_bytes(hashlib.sha256(line).digest(), "big")
        self.rows += 1

    def add_many(self, lines: list[bytes]) -> None:
        sha, from_bytes = hashlib.sha256, int.from_bytes
        self._sum += sum(from_bytes(sha(line).digest(), "big") for line in lines)
        self.rows += len(lines)

    def add_block(self, lines: list[bytes], block: bytes) -> None:
        """``lines`` joined are ``block`` (the ordered digest hashes the block instead)."""
        self.add_many(lines)

    def hexdigest(self) -> str:
        return f"{self._sum % _MOD:064x}"


class OrderedRowDigest:
    """The SHA-256 of the records one after the other, header excluded: for an export
    ordered by the primary key, where the order itself is reproducible. Blocks of records
    are hashed at once (outside the GIL), not one call per row."""

    method = KEY_ORDER_METHOD

    def __init__(self) -> None:
        self.rows = 0
        self._sha = hashlib.sha256()

    def add(self, line: bytes) -> None:
        self._sha.update(line)
        self.rows += 1

    def add_many(self, lines: list[bytes]) -> None:
        self._sha.update(b"".join(lines))
        self.rows += len(lines)

    def add_block(self, lines: list[bytes], block: bytes) -> None:
        self._sha.update(block)
        self.rows += len(lines)

    def add_bytes(self, data: bytes) -> None:
        """Records cut anywhere; the caller sets ``rows`` once it knows them."""
        self._sha.update(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class PlaintextRowDigest:
    """The row digest that is the plaintext's own SHA-256 (header included): it counts the
    rows and reads its digest from ``plaintext``, the hash every byte of the stream goes
    into anyway; it hashes nothing itself."""

    method = PLAINTEXT_METHOD

    def __init__(self, plaintext: Any) -> None:
        self.rows = 0
        self._plaintext = plaintext

    def add(self, line: bytes) -> None:
        self.rows += 1

    def add_many(self, lines: list[bytes]) -> None:
        self.rows += len(lines)

    def add_block(self, lines: list[bytes], block: bytes) -> None:
        self.rows += len(lines)

    def add_bytes(self, data: bytes) -> None:
        """Records cut anywhere; the caller sets ``rows`` once it knows them."""

    def hexdigest(self) -> str:
        return str(self._plaintext.hexdigest())


AnyRowDigest = RowDigest | OrderedRowDigest | PlaintextRowDigest


def row_digest(method: str, plaintext: Any = None) -> AnyRowDigest:
    """A fresh row digest of ``method`` (a manifest's ``row_digest_method``); ``plaintext``
    is the hash of the whole plaintext stream, which ``PLAINTEXT_METHOD`` reads."""
    if method == SUM_METHOD:
        return RowDigest()
    if method == KEY_ORDER_METHOD:
        return OrderedRowDigest()
    if method == PLAINTEXT_METHOD:
        if plaintext is None:
            raise IntegrityError(f"the row digest {method!r} needs the plaintext's hash")
        return PlaintextRowDigest(plaintext)
    raise IntegrityError(f"unknown row digest method {method!r} (a newer version's?)")


_TRUNCATED = "the CSV ends inside a quoted value (truncated?)"


def _whole_records(lines: Iterable[bytes], pending: list[bytes]) -> Iterator[bytes]:
    """Whole CSV records from physical lines: a record ends where its quotes are balanced.
    The lines of an unfinished last record are left in ``pending`` (and taken up from it by
    the next call)."""
    quotes = sum(line.count(b'"') for line in pending)
    for line in lines:
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending.clear()
            quotes = 0


def csv_records(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Whole CSV records from physical lines, streamed; IntegrityError if the last is cut."""
    pending: list[bytes] = []
    yield from _whole_records(lines, pending)
    if pending:
        raise IntegrityError(_TRUNCATED)


def record_lists(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The records ``csv_records(physical_lines(chunks, ...))`` yields, as one list per
    chunk, without a Python step per record where the chunk allows: when no line of it ends
    inside a quoted value (each newline has an even number of quotes before it, found with
    numpy) and it holds no carriage return, its lines are its records (``splitlines`` in C).
    Other chunks go line by line as ``csv_records`` does; IntegrityError if the last is cut."""
    pending: list[bytes] = []
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        body, rest = data[:cut], data[cut:]
        if not pending and b"\r" not in body and _lines_are_records(body):
            yield body.splitlines(keepends=True)
        else:
            yield list(_whole_records(body.splitlines(keepends=True), pending))
    last = list(_whole_records([rest] if rest else [], pending))
    if pending:
        raise IntegrityError(_TRUNCATED)
    if last:
        yield last


def stream_records(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Every record of a CSV stream, header included, one at a time (``record_lists``)."""
    for records in record_lists(chunks):
        yield from records


def _lines_are_records(body: bytes) -> bool:
    """Whether every newline of ``body`` (which starts a record) ends a record."""
    return record_ends(body) == body.count(b"\n")


def record_ends(data: bytes) -> int:
    """How many records end in ``data`` (which starts a record): its newlines with an even
    number of quotes before them (a doubled quote inside a value counts twice)."""
    import numpy as np

    raw = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    quotes = np.flatnonzero(raw == ord('"'))
    if not quotes.size:
        return int(newlines.size)
    return int(np.count_nonzero((np.searchsorted(quotes, newlines) & 1) == 0))


def physical_lines(chunks: Iterator[bytes], sha: Any, counter: list[int]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        sha.update(chunk)
        counter[0] += len(chunk)
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        yield from data[:cut].splitlines(keepends=True)
        rest = data[cut:]
    if rest:
        yield rest


_FIELD = re.compile(rb'(?:^|,)(?:"((?:[^"]|"")*)"|([^,\n]*))')


def fields(record: bytes) -> list[tuple[str | None, bool]]:
    """The fields of one backup CSV record: (text or None for NULL, whether it was quoted)."""
    out: list[tuple[str | None, bool]] = []
    for match in _FIELD.finditer(record.rstrip(b"\n")):
        quoted, bare = match.group(1), match.group(2)
        if quoted is not None:
            out.append((quoted.replace(b'""', b'"').decode("utf-8"), True))
        else:
            out.append((bare.decode("utf-8") if bare else None, False))
    return out


def leading_fields(record: bytes, count: int) -> list[tuple[str | None, bool]]:
    """The first ``count`` fields of a record, as :func:`fields` gives them, without parsing
    the rest (a key in front of long text); a record of any other shape goes to
    :func:`fields` itself."""
    record = record.rstrip(b"\n")
    out: list[tuple[str | None, bool]] = []
    pos, end = 0, len(record)
    while len(out) < count:
        if record.startswith(b'"', pos):
            close = record.find(b'"', pos + 1)
            while close != -1 and record.startswith(b'"', close + 1):
                close = record.find(b'"', close + 2)
            if close == -1 or (close + 1 < end and record[close + 1] != 44):  # 44: ","
                return fields(record)[:count]
            out.append((record[pos + 1 : close].replace(b'""', b'"').decode("utf-8"), True))
            pos = close + 1
        else:
            comma = record.find(b",", pos)
            stop = end if comma == -1 else comma
            text = record[pos:stop]
            if b"\n" in text:
                return fields(record)[:count]
            out.append((text.decode("utf-8") if text else None, False))
            pos = stop
        if pos >= end:
            break
        pos += 1  # past the comma
    return out


def parse_record(record: bytes) -> tuple[str | None, ...]:
    """One CSV record in the backup's dialect: an empty unquoted field is NULL."""
    return tuple(text for text, _quoted in fields(record))


def complete_records(lines: list[bytes], *, final: bool) -> Iterator[bytes]:
    """Whole records from ``lines``; an unfinished last record stays in ``lines``."""
    pending: list[bytes] = []
    done = list(_whole_records(lines, pending))
    if final and pending:
        raise IntegrityError(_TRUNCATED)
    lines[:] = pending
    return iter(done)
