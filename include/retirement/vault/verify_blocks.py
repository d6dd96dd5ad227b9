"""Restore-verify of a key-order backup without a Python call per record.

The row digest of such a backup is the SHA-256 of the records one after the other, so it is
hashed over the decrypted blocks. The records are counted and profiled (NULLs per column,
key NULLs and duplicates) by pyarrow's CSV reader in 1 MiB blocks: an empty unquoted field
is NULL, a quoted one (``""``) is not, exactly as the backup's dialect says (formats/csv.py).
Memory stays flat: integer keys come in ascending order in a key-order backup, so each is
compared with the one before it; other keys (texts, several columns) are kept as 64-bit
hashes, 8 bytes a row, and sorted at the end.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.errors import IntegrityError
from retirement.formats.csv import csv_field
from retirement.formats.csv_blocks import WholeRecords
from retirement.formats.digests import CHUNK

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class BlockProfile:
    rows: int
    row_digest: str
    nulls: tuple[int, ...]
    key_nulls: int
    key_duplicates: int


class _Body:
    """A file-like reader of the plaintext chunks for pyarrow: every byte goes into the
    plaintext hash, the bytes after the expected header into the records' digest (when
    ``digest`` is set: the key-order method's; the plaintext method's is the plaintext's)."""

    closed = False

    def __init__(
        self, chunks: Iterator[bytes], header: bytes, sha: Any, counter: list[int], digest: Any
    ) -> None:
        self._chunks, self._header, self._sha, self._counter = chunks, header, sha, counter
        self.digest = digest
        self._head = b""
        self._rest = b""

    def _next(self) -> bytes:
        for chunk in self._chunks:
            self._sha.update(chunk)
            self._counter[0] += len(chunk)
            if len(self._head) < len(self._header):
                take = len(self._header) - len(self._head)
                self._head += chunk[:take]
                chunk = chunk[take:]
                if len(self._head) == len(self._header) and self._head != self._header:
                    raise IntegrityError("the CSV's header is not the manifest's columns")
            if chunk:
                if self.digest is not None:
                    self.digest.update(chunk)
                return chunk
        if self._head != self._header:
            raise IntegrityError("the CSV ends inside its header (truncated?)")
        return b""

    def read(self, size: int = -1) -> bytes:
        data = self._rest or self._next()
        while size < 0 or len(data) < size:
            more = self._next()
            if not more:
                break
            data += more
        if size >= 0:
            data, self._rest = data[:size], data[size:]
        else:
            self._rest = b""
        return data

    def empty(self) -> bool:
        """Whether there is no record at all (pyarrow refuses an empty input)."""
        self._rest = self._rest or self._next()
        return not self._rest

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def header_bytes(names: list[str]) -> bytes:
    """The header line a backup writes for these columns (vault/write.py)."""
    return (",".join(csv_field(c) for c in names) + "\n").encode("utf-8")


def _reader(body: _Body, width: int) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(width)]
    return pacsv.open_csv(
        WholeRecords(body),  # type: ignore[arg-type]
        read_options=pacsv.ReadOptions(column_names=names, block_size=CHUNK),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


class KeysOutOfOrder(Exception):  # noqa: N818 (a signal to the caller, not an error)
    """The integer keys did not come in ascending order: the flat duplicate check cannot
    tell; verify again keeping every key (``profile_blocks(..., keep_keys=True)``)."""


class _Duplicates:
    """Duplicate keys among all rows. Integer keys in ascending order (a key-order backup
    of an integer key) are checked against their neighbours, in flat memory; any other keys
    are kept, 8 bytes a row, and sorted at the end."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.kept = array("Q")
        self.last: int | None = None
        self.adjacent = 0

    def add(self, values: Any, exact: bool) -> None:
        import numpy as np

        if not len(values):
            return
        if self.keep or not exact:
            if not self.keep and self.last is not None:
                raise KeysOutOfOrder  # integers so far, now hashes: start again keeping all
            self.keep = True
            self.kept.frombytes(values.astype(np.uint64).tobytes())
            return
        ordered = values[1:] >= values[:-1]
        if not bool(ordered.all()) or (self.last is not None and int(values[0]) < self.last):
            raise KeysOutOfOrder
        self.adjacent += int(np.count_nonzero(values[1:] == values[:-1]))
        self.adjacent += int(self.last is not None and int(values[0]) == self.last)
        self.last = int(values[-1])

    def count(self) -> int:
        import numpy as np

        if not self.keep:
            return self.adjacent
        ordered = np.sort(np.frombuffer(self.kept, dtype=np.uint64))
        return int(np.count_nonzero(ordered[1:] == ordered[:-1])) if len(ordered) > 1 else 0


def _key_hashes(batch: Any, key_index: list[int]) -> tuple[int, Any, bool]:
    """(rows with a NULL key part, the complete keys as 64-bit values, whether those are the
    integers themselves: else 64-bit hashes) of one batch."""
    import pyarrow.compute as pc

    parts = [batch.column(i) for i in key_index]
    missing = parts[0].is_null()
    for part in parts[1:]:
        missing = pc.or_(missing, part.is_null())
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    complete = joined.filter(pc.invert(missing))
    missing_rows = int(pc.sum(missing).as_py() or 0)
    exact = _integer_keys(complete)
    if exact is not None:
        return missing_rows, exact, True
    import pandas as pd  # only for keys other than integers: its import takes a while

    return missing_rows, pd.util.hash_array(complete.to_numpy(zero_copy_only=False)), False


def _integer_keys(keys: Any) -> Any:
    """Integer keys as themselves (no hashing, no collision) where every key is the text of
    a 64-bit integer; else None. Texts that are not an integer's canonical form ("007",
    "+7") read as the integer they spell: two such texts can only add a duplicate the
    check then reports (verification fails), never hide one, so no round trip to text is
    made (it cost a third of the verification's time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        numbers = pc.cast(keys, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return numbers.to_numpy(zero_copy_only=False)


def profile_blocks(
    chunks: Iterator[bytes],
    names: list[str],
    key_index: list[int],
    sha: Any,
    counter: list[int],
    *,
    keep_keys: bool = False,
    records: bool = True,
) -> BlockProfile:
    """Count, profile and digest the CSV records of a key-order backup's plaintext
    (``records`` False: no digest of the records, ``row_digest`` left empty: the plaintext
    method's row digest is ``sha``'s).

    Integer keys in ascending order are checked for duplicates in flat memory; where they
    turn out not to be ascending this raises :class:`KeysOutOfOrder` (nothing is decided:
    verify again with ``keep_keys``, which keeps every key, 8 bytes a row)."""
    import pyarrow as pa

    digest = hashlib.sha256() if records else None
    body = _Body(chunks, header_bytes(names), sha, counter, digest)
    rows, nulls, key_nulls, keys = 0, [0] * len(names), 0, _Duplicates(keep_keys)
    if body.empty():
        return BlockProfile(0, digest.hexdigest() if digest else "", tuple(nulls), 0, 0)
    try:
        for batch in _reader(body, len(names)):
            rows += batch.num_rows
            for i in range(len(names)):
                nulls[i] += batch.column(i).null_count
            if key_index:
                missing, values, exact = _key_hashes(batch, key_index)
                key_nulls += missing
                keys.add(values, exact)
    except pa.ArrowInvalid as exc:
        raise IntegrityError(f"the CSV cannot be read: {exc}") from exc
    found = digest.hexdigest() if digest else ""
    return BlockProfile(rows, found, tuple(nulls), key_nulls, keys.count())
