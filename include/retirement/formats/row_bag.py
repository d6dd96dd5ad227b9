"""A multiset of row digests, 8 bytes a row, for "are these rows all in the backup?" and
"how many of the backup's rows are still here?".

Rows are the backup's own CSV lines; each is kept as the first 8 bytes of its SHA-256 in a
compact array (10 million rows: 80 MB), sorted once. Two different lines share a digest
with probability about 2^-64 per pair: far below a disk's silent error rate.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np


def digest64(line: bytes) -> int:
    return int.from_bytes(hashlib.sha256(line).digest()[:8], "big")


class RowBag:
    """Lines added one by one; then sorted unique digests with their counts."""

    def __init__(self, lines: Iterable[bytes] = ()) -> None:
        self._values = array("Q")
        self.rows = 0
        for line in lines:
            self.add(line)

    def add(self, line: bytes) -> None:
        self._values.append(digest64(line))
        self.rows += 1

    def counted(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique digests, how often each occurs)."""
        import numpy as np

        values = np.frombuffer(self._values, dtype=np.uint64) if self.rows else np.zeros(0, "u8")
        return np.unique(values, return_counts=True)


class Matcher:
    """Counts how many of a stream of lines (the backup's) are in a bag (what is at the
    source), each bag entry matched at most as often as it occurs: a multiset intersection,
    streamed in chunks so the stream is never held in memory."""

    def __init__(self, bag: RowBag, chunk: int = 65_536) -> None:
        self._unique, self._counts = bag.counted()
        import numpy as np

        self._used = np.zeros(len(self._unique), dtype=np.int64)
        self._pending = array("Q")
        self._chunk = chunk
        self.seen = 0

    def feed(self, line: bytes) -> None:
        self._pending.append(digest64(line))
        self.seen += 1
        if len(self._pending) >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if not self._pending or not len(self._unique):
            self._pending = array("Q")
            return
        values = np.frombuffer(self._pending, dtype=np.uint64)
        at = np.searchsorted(self._unique, values)
        at[at == len(self._unique)] = 0
        hit = self._unique[at] == values
        self._used += np.bincount(at[hit], minlength=len(self._unique))
        self._pending = array("Q")

    @property
    def matched(self) -> int:
        """Lines of the stream found in the bag (bounded by how often each is there)."""
        import numpy as np

        self._flush()
        return int(np.minimum(self._used, self._counts).sum())

    @property
    def unmatched_in_bag(self) -> int:
        """Entries of the bag that no line of the stream matched."""
        return int(self._counts.sum()) - self.matched
