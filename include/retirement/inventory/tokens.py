"""Identifiers that are a whole run of ASCII letters and digits, found in numpy.

A resident ID or a USCC inside text is, by the reference's lookarounds (no letter or digit
on either side), a maximal run of ``[0-9A-Za-z]`` exactly 18 bytes long that has the
identifier's shape. So every such run of every candidate cell is found at once over the
cells' bytes (a table lookup, two shifts and ``flatnonzero``), where RE2 would extract them
match by match with capture groups (about five times a plain match's cost). A byte of a
character beyond ASCII is never a letter or digit here, as for the patterns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_ALNUM = np.zeros(256, dtype=bool)
_ALNUM[[*range(ord("0"), ord("9") + 1), *range(ord("A"), ord("Z") + 1)]] = True
_ALNUM[ord("a") : ord("z") + 1] = True


def runs_of_width(cells: pa.Array, width: int) -> tuple[np.ndarray, pa.Array]:
    """(the cell of each, the runs): every maximal run of ASCII letters and digits exactly
    ``width`` bytes long in ``cells``, in order (a run never spans two cells)."""
    offsets = np.frombuffer(cells.buffers()[1], dtype=np.int32)
    offsets = offsets[cells.offset : cells.offset + len(cells) + 1]
    data = cells.buffers()[2]
    none = (np.zeros(0, dtype=np.intp), pa.array([], type=pa.string()))
    if data is None or offsets[-1] == offsets[0]:
        return none
    base = int(offsets[0])
    body = np.frombuffer(data, dtype=np.uint8)[base : offsets[-1]]
    starts = offsets - base
    alnum = _ALNUM[body]
    edge = np.zeros(len(body) + 1, dtype=bool)
    edge[starts] = True  # a cell's first byte (and the end): no run goes across
    before = np.zeros(len(body), dtype=bool)
    before[1:] = alnum[:-1]
    before &= ~edge[:-1]
    after = np.zeros(len(body), dtype=bool)
    after[:-1] = alnum[1:]
    after &= ~edge[1:]
    first = np.flatnonzero(alnum & ~before)
    last = np.flatnonzero(alnum & ~after)
    at = first[last - first + 1 == width]
    if not len(at):
        return none
    cell = np.searchsorted(starts, at, side="right") - 1
    matrix = body[at[:, None] + np.arange(width)]
    ends = np.arange(0, width * (len(at) + 1), width, dtype=np.int32)
    runs = pa.Array.from_buffers(
        pa.string(), len(at), [None, pa.py_buffer(ends), pa.py_buffer(matrix.tobytes())]
    )
    return cell, runs
