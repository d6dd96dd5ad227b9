"""Identifiers that are a whole run of characters of one class, found in numpy.

A resident ID or a USCC inside text is, by the reference's lookarounds (no letter or digit
on either side), a maximal run of ``[0-9A-Za-z]`` exactly 18 bytes long that has the
identifier's shape; a bank card number written without spaces or hyphens is a maximal run
of 12 to 19 digits with neither a digit nor a hyphen beside it. So every such run of every
cell is found at once over the cells' bytes (table lookups, shifts and ``flatnonzero``),
where RE2 would extract them match by match with capture groups (about five times a plain
match's cost). A cell where a joiner (a space or a hyphen, for cards) sits between two
digits may hold an identifier written in groups: the caller searches those as before. A
byte of a character beyond ASCII is never in a class here, as for the patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

DIGITS = b"0123456789"
ALNUM = DIGITS + b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _table(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


@dataclass(frozen=True)
class Run:
    """Runs of ``member`` bytes, ``shortest`` to ``longest`` long, with no ``wall`` byte
    (``member`` included) just before or after; a cell where a ``joiner`` sits between two
    members is left to the caller."""

    member: bytes
    wall: bytes
    shortest: int
    longest: int
    joiner: bytes = b""


@dataclass(frozen=True)
class Runs:
    """The runs of a batch: the cell of each, the runs (an Arrow string array), and which
    cells hold a joiner between two members (their runs are not listed)."""

    cell: np.ndarray
    runs: pa.Array
    joined: np.ndarray


def find_runs(cells: pa.Array, run: Run) -> Runs:
    """Every run ``run`` describes in ``cells``, in order (a run never spans two cells)."""
    offsets = np.frombuffer(cells.buffers()[1], dtype=np.int32)
    offsets = offsets[cells.offset : cells.offset + len(cells) + 1]
    data = cells.buffers()[2]
    joined = np.zeros(len(cells), dtype=bool)
    none = Runs(np.zeros(0, dtype=np.intp), pa.array([], type=pa.string()), joined)
    if data is None or offsets[-1] == offsets[0]:
        return none
    base = int(offsets[0])
    body = np.frombuffer(data, dtype=np.uint8)[base : offsets[-1]]
    starts = offsets - base
    member, wall = _table(run.member)[body], _table(run.wall)[body]
    edge = np.zeros(len(body) + 1, dtype=bool)
    edge[starts] = True  # a cell's first byte (and the end): nothing reaches across
    before, after = _shifted(member, edge)
    first = np.flatnonzero(member & ~before)
    last = np.flatnonzero(member & ~after)
    size = last - first + 1
    wall_before, wall_after = _shifted(wall, edge)
    ok = (size >= run.shortest) & (size <= run.longest)
    ok &= ~wall_before[first] & ~wall_after[last]
    if run.joiner:
        between = _table(run.joiner)[body] & before & after
        joined[np.searchsorted(starts, np.flatnonzero(between), side="right") - 1] = True
    cell = np.searchsorted(starts, first, side="right") - 1
    ok &= ~joined[cell]
    if not ok.any():
        return none if not joined.any() else Runs(none.cell, none.runs, joined)
    at, size, cell = first[ok], size[ok], cell[ok]
    ends = np.concatenate(([0], np.cumsum(size))).astype(np.int32)
    index = np.arange(int(ends[-1])) + np.repeat(at - ends[:-1], size)
    runs = pa.Array.from_buffers(
        pa.string(), len(at), [None, pa.py_buffer(ends), pa.py_buffer(body[index].tobytes())]
    )
    return Runs(cell, runs, joined)


def _shifted(flags: np.ndarray, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the flag of the byte before, of the byte after) each byte, False across a cell's
    edge."""
    before = np.zeros(len(flags), dtype=bool)
    before[1:] = flags[:-1]
    before &= ~edge[:-1]
    after = np.zeros(len(flags), dtype=bool)
    after[:-1] = flags[1:]
    after &= ~edge[1:]
    return before, after
