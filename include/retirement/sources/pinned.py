"""One file held open while a backup reads it, so the digest the backup records is the
digest of the very bytes it read.

A backup records the file's size and SHA-256; deletion later unlinks the file only if it
still has them. That is safe only if the backup holds exactly the bytes so digested. Hashing
the file before and after reading it does not prove that: a program that rewrites a file in
place (truncate, write the same bytes again) can be caught in the middle by the read and
be whole again for both hashes, and the backup then holds a shorter file than it records
(tests/unit/vault/test_file_read_consistency.py reproduces it).

So every read of the file during a backup goes through one descriptor (opened without
following links, ``files.open_inside``) and one ``PinnedFile``:

* a **document** is read once, front to back; the backup's own plaintext SHA-256 and size
  are what it records of the file (the same bytes, hashed once).
* a **table** (CSV, JSON lines, Parquet, XLSX) may be read several times and out of order
  (its header, then its rows; a workbook's index, then a sheet). Each 1 MiB block read is
  remembered by its SHA-256 and must be the same each time it is read again; at the end one
  pass over the file computes the recorded digest and checks that every block the readers
  used is still byte for byte what they used, and any size they asked for is the size. The
  rows backed up are then a reading of exactly the recorded bytes.

Anything else raises ``ObjectChanged``: nothing is kept and the backup can be run again.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

from retirement.errors import ObjectChanged

BLOCK = 1 << 20
_EMPTY = hashlib.sha256(b"").digest()


def _pread(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``, fewer only at the end of the file."""
    parts, got = [], 0
    while got < size:
        part = os.pread(fd, size - got, offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class PinnedFile:
    """The reads of one open file during one backup (module docstring)."""

    def __init__(self, fd: int, where: str, *, document: bool) -> None:
        self.fd, self.where, self.document = fd, where, document
        self._opened = os.fstat(fd)
        self.size = self._opened.st_size
        self._blocks: dict[int, bytes] = {}  # block index -> SHA-256 of its bytes as read
        self._cached: tuple[int, bytes] = (-1, b"")
        self._sizes: set[int] = set()
        self._streamed = 0  # a document: bytes read so far, front to back
        self._ended = False

    def changed(self, what: str) -> ObjectChanged:
        return ObjectChanged(
            f"{self.where}: the file changed while it was read ({what}); nothing was kept: "
            "re-run the backup when it is no longer being written"
        )

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset``, as the pinned file has them."""
        if self.document:
            return self._stream(offset, size)
        index, within = divmod(offset, BLOCK)
        data = self._block(index)
        return data[within : within + size]

    def size_now(self) -> int:
        """The file's size, as a reader seeking to its end sees it (checked at the end)."""
        size = os.fstat(self.fd).st_size
        self._sizes.add(size)
        return size

    def _stream(self, offset: int, size: int) -> bytes:
        if offset != self._streamed:
            raise self.changed(f"a document read out of order at {offset}")  # a bug, not a race
        data = os.pread(self.fd, size, offset)
        self._streamed += len(data)
        self._ended = self._ended or not data
        return data

    def _block(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        data = _pread(self.fd, BLOCK, index * BLOCK)
        digest = hashlib.sha256(data).digest()
        known = self._blocks.setdefault(index, digest)
        if known != digest:
            raise self.changed(f"bytes {index * BLOCK}-{index * BLOCK + BLOCK - 1} differ")
        self._cached = (index, data)
        return data

    def state(self, document: tuple[int, str] | None = None) -> tuple[int, str]:
        """(size, SHA-256) of the bytes every read saw; ObjectChanged where they were not one
        and the same file. ``document``: (size, SHA-256) of a document as the backup hashed
        its bytes while streaming them."""
        if self.document:
            if document is None or not self._ended or document[0] != self._streamed:
                raise self.changed("the document was not read to its end")
            found = document
        else:
            found = self._final_pass()
        # the bytes decide; this catches what they may not (a change within one read) early.
        # Not the inode change time: a chmod, a hard link or an extended attribute moves it
        # without touching a byte (a snapshot tool or a virus scanner would fail every backup)
        now = os.fstat(self.fd)
        if (now.st_size, now.st_mtime_ns) != (self._opened.st_size, self._opened.st_mtime_ns):
            raise self.changed("its size or modification time moved")
        return found

    def _final_pass(self) -> tuple[int, str]:
        sha, size, index = hashlib.sha256(), 0, 0
        while True:
            data = _pread(self.fd, BLOCK, index * BLOCK)
            known = self._blocks.get(index)
            if known is not None and hashlib.sha256(data).digest() != known:
                raise self.changed(f"bytes {index * BLOCK}-{index * BLOCK + BLOCK - 1} differ")
            sha.update(data)
            size += len(data)
            if len(data) < BLOCK:
                break
            index += 1
        if any(i > index and known != _EMPTY for i, known in self._blocks.items()):
            raise self.changed("it was longer when read than now")
        if self._sizes - {size}:
            raise self.changed(f"its size was {sorted(self._sizes)} when read, {size} now")
        return size, sha.hexdigest()


class PinnedReader(io.RawIOBase):
    """A file object over a ``PinnedFile``: each opener gets its own position."""

    def __init__(self, pinned: PinnedFile) -> None:
        super().__init__()
        self._pinned, self._pos = pinned, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return not self._pinned.document

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            base = self._pinned.size_now()
        else:
            base = self._pos if whence == io.SEEK_CUR else 0
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._pinned.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
