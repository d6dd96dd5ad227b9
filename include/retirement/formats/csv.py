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


class RowDigest:
    """An order-independent digest of rows: the sum mod 2^256 of each line's SHA-256."""

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

    def hexdigest(self) -> str:
        return f"{self._sum % _MOD:064x}"


_TRUNCATED = "the CSV ends inside a quoted value (truncated?)"


def _whole_records(lines: Iterable[bytes], pending: list[bytes]) -> Iterator[bytes]:
    """Whole CSV records from physical lines: a record ends where its quotes are balanced.
    The lines of an unfinished last record are left in ``pending``."""
    quotes = 0
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
