"""A CSV byte stream handed to pyarrow's reader in blocks that each hold a record's end.

pyarrow's CSV reader (``newlines_in_values=True``) lets a record run from one of its blocks
into the next, but no further: a value longer than a block, such as a document with line
breaks in a text column, failed the whole read with "straddling object straddles two block
boundaries". :class:`WholeRecords` sits between the stream and pyarrow: a read returns the
stream's bytes as they come, and when they hold no record's end, more of them (pyarrow takes
a longer buffer than it asked for as one block), up to ``MAX_RECORD`` bytes. Every block
then holds the end of the record the block before left open, so no record spans more than
two. No block ends between the ``\r`` and the ``\n`` of a ``\r\n`` either: pyarrow 26
drops that ``\n`` from a quoted value (``"a\r\n"`` read as ``a\r``). The bytes are the
stream's, in order; only where pyarrow's blocks end changes
(tests/unit/vault/test_csv_blocks.py holds the parse equal to one read of it all).

A record ends at a line break outside quotes: after an even number of ``"`` in the stream
before it (a doubled quote inside a value counts twice), at ``\n`` or at a ``\r`` not
followed by ``\n``. The quotes are counted in numpy, one pass over each block; a stray quote
in an unquoted field, which pyarrow reads as a character, moves the blocks' ends, not the
bytes.
"""

from __future__ import annotations

import codecs
import io
from typing import IO

import numpy as np

# The longest block pyarrow is given while no record ends in it: beyond it a read returns
# what it holds and pyarrow's own error says the record is too long.
MAX_RECORD = 64 << 20
_QUOTE, _LF, _CR = 0x22, 0x0A, 0x0D


class WholeRecords(io.RawIOBase):
    """``raw``'s bytes in blocks that each hold a record's end (see the module docstring)."""

    def __init__(self, raw: IO[bytes] | io.RawIOBase) -> None:
        self._raw = raw
        self._odd = False  # inside quotes where the next block starts
        self._scratch = np.empty(0, dtype=bool)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self._raw.read() or b""
        if size == 0:
            return b""
        first = piece = self._raw.read(size) or b""
        pieces, total, odd = [first], len(first), self._odd
        while piece and total < MAX_RECORD and not holds_record_end(piece, odd):
            odd ^= self._quotes(piece) % 2 == 1
            piece = self._raw.read(size) or b""
            pieces.append(piece)
            total += len(piece)
        self._odd = odd ^ (self._quotes(piece) % 2 == 1)
        while pieces[-1].endswith(b"\r") and (extra := self._raw.read(1)):
            pieces.append(extra)  # pyarrow drops the \n of a \r\n cut between two blocks
            self._odd ^= extra == b'"'
        return first if len(pieces) == 1 else b"".join(pieces)

    def _quotes(self, data: bytes) -> int:
        """How many ``"`` ``data`` holds (numpy, into a buffer kept between reads)."""
        if len(self._scratch) < len(data):
            self._scratch = np.empty(len(data), dtype=bool)
        found = self._scratch[: len(data)]
        np.equal(np.frombuffer(data, dtype=np.uint8), _QUOTE, out=found)
        return int(np.count_nonzero(found))

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise io.UnsupportedOperation("WholeRecords is read with read()")


def holds_record_end(data: bytes, odd: bool) -> bool:
    """Whether a record ends in ``data`` (``odd``: it starts inside quotes). A ``\r`` at its
    very end does not count: it may be the first half of ``\r\n``."""
    first = data.find(b"\n")
    if first >= 0 and (odd + data.count(b'"', 0, first)) % 2 == 0:
        return True  # the common case: the first line break ends a record
    raw = np.frombuffer(data, dtype=np.uint8)
    # quotes up to each byte, modulo 256 (the parity is all that counts)
    outside = ((np.cumsum(raw == _QUOTE, dtype=np.uint8) + odd) & 1) == 0
    breaks = raw == _LF
    breaks[:-1] |= (raw[:-1] == _CR) & (raw[1:] != _LF)
    return bool((breaks & outside).any())


class Utf8(io.RawIOBase):
    """``raw`` decoded from ``encoding`` and encoded as UTF-8 (UnicodeDecodeError where it
    is not in ``encoding``). pyarrow's own transcoding re-cuts the bytes into blocks of its
    size, so a file in another encoding is turned into UTF-8 before :class:`WholeRecords`."""

    def __init__(self, raw: IO[bytes] | io.RawIOBase, encoding: str) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while not self._done:
            chunk = self._raw.read(size if size is not None and size > 0 else -1) or b""
            self._done = not chunk
            text = self._decoder.decode(chunk, final=self._done)
            if text:
                return text.encode("utf-8")
        return b""

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise io.UnsupportedOperation("Utf8 is read with read()")
