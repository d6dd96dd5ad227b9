"""A batch of one column as the engine reads it: Arrow buffers, no Python object per cell.

What every rule of :mod:`retirement.inventory.engine` shares of a batch is computed here once
(:class:`Batch`): the non-empty cells (decided by their first byte in numpy), the cells joined
into one text (to skip a rule no cell can match with one RE2 pass), whether every digit is
0-9 (so that patterns can use the small ASCII automaton), the cells trimmed of spaces and tabs
and their byte lengths.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import re2

from retirement.inventory.tokens import Run, Runs, find_runs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from retirement.inventory.rules import Rule
    from retirement.inventory.vectorized import Mask

_BLANK = r"^[\s\p{Z}\x0b\x1c-\x1f\x{85}]*$"


def to_strings(values: Iterable[object] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as an Arrow string array (None for NULL); bytes decoded as UTF-8."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    cells = values if isinstance(values, list | tuple) else list(values)
    try:
        return pa.array(cells, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_cell(v) for v in cells], type=pa.string())


def _cell(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


# The first UTF-8 byte of every character ``_BLANK`` takes (ASCII controls and space, and the
# lead bytes of U+0085, U+00A0, U+1680, U+2000-U+205F and U+3000): a cell that starts with
# any other byte holds something, no regex needed.
_MAY_BE_BLANK = np.zeros(256, dtype=bool)
_MAY_BE_BLANK[[*range(0x21), 0x7F, 0xC2, 0xE1, 0xE2, 0xE3]] = True


def cell_offsets(column: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    return offsets[column.offset : column.offset + len(column) + 1]


def non_empty(column: pa.Array) -> Mask:
    """Cells that hold something other than whitespace: decided by their first byte in numpy,
    and by the ``_BLANK`` regex for the cells that start with a byte a blank can start with."""
    offsets, data = cell_offsets(column), column.buffers()[2]
    valid = np.asarray(column.is_valid(), dtype=bool)
    filled = valid & (offsets[1:] > offsets[:-1])
    if data is None or not filled.any():
        return filled
    first = np.frombuffer(data, dtype=np.uint8)[np.minimum(offsets[:-1], data.size - 1)]
    unsure = np.flatnonzero(filled & _MAY_BE_BLANK[first])
    if len(unsure):
        blank = pc.match_substring_regex(column.take(pa.array(unsure)), _BLANK)
        filled[unsure[np.asarray(blank, dtype=bool)]] = False
    return filled


def match(column: pa.Array, pattern: str) -> Mask:
    return np.asarray(pc.fill_null(pc.match_substring_regex(column, pattern), False), dtype=bool)


def joined(column: pa.Array) -> pa.Array:
    """The batch's cells as one string joined by line breaks: one array of one value.

    Joined by Arrow in C from the column's own buffers (no Python object per cell); a NULL
    cell is an empty line."""
    cells = column.fill_null("") if column.null_count else column
    one_list = pa.ListArray.from_arrays(pa.array([0, len(cells)], pa.int32()), cells)
    return pc.binary_join(one_list, "\n")


def ascii_digits(column: pa.Array) -> np.ndarray:
    """How many ASCII digits each cell holds, counted in numpy over the column's buffers."""
    offsets = cell_offsets(column)
    data = column.buffers()[2]
    if data is None:
        return np.zeros(len(column), dtype=np.int64)
    body = np.frombuffer(data, dtype=np.uint8)[: offsets[-1]]
    digit = (body >= ord("0")) & (body <= ord("9"))
    seen: np.ndarray = np.concatenate(([0], np.cumsum(digit, dtype=np.int32)))
    counts: np.ndarray = seen[offsets[1:]] - seen[offsets[:-1]]
    return counts


@functools.cache
def _other_digits() -> str:
    """An RE2 class of every decimal digit but 0-9 (Python's table: what ``\\d`` of the
    reference's regexes takes), as code point ranges."""
    import sys

    top = sys.maxunicode + 1
    step = 1 << 16  # a plane at a time: the whole range as one string would take 100 MB
    points = [
        m.start() + start
        for start in range(0x80, top, step)
        for m in re.finditer(r"\d", "".join(map(chr, range(start, min(start + step, top)))))
    ]
    ranges: list[list[int]] = []
    for c in points:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"


def digits_are_ascii(text: pa.Array) -> bool:
    """The batch (:func:`joined`) holds no digit but 0-9: one pass of RE2 over it, none when
    it is ASCII."""
    data = text.buffers()[2]
    if data is None or not len(data) or np.frombuffer(data, dtype=np.uint8).max() < 0x80:
        return True
    return not pc.match_substring_regex(text, _other_digits())[0].as_py()


@functools.lru_cache(maxsize=256)
def ascii_digit_form(pattern: str) -> str:
    """``pattern`` with RE2's Unicode digit class as 0-9: the same matches on text whose
    only digits are ASCII, and a far smaller automaton (the Unicode class makes RE2's DFA
    slow on mixed text)."""
    out: list[str] = []
    i, in_class, class_start = 0, False, 0
    while i < len(pattern):
        if pattern.startswith((r"\p{Nd}", r"\P{Nd}"), i):
            negated = pattern[i + 1] == "P"
            if in_class and negated:
                return pattern  # no ASCII form inside a class: keep the Unicode one
            out.append("0-9" if in_class else "[^0-9]" if negated else "[0-9]")
            i += 6
            continue
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class, class_start = True, i + 1 + (pattern[i + 1 : i + 2] == "^")
        elif char == "]" and in_class and i > class_start:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Batch:
    """What every rule reads of one column's batch, computed once."""

    column: pa.Array
    filled: Mask  # non-empty cells
    text: pa.Array  # the cells :func:`joined`
    ascii_digits: bool  # no digit but 0-9 in any cell
    # patterns searched in ``text`` so far, and whether they matched (``has``, ``search``)
    _known: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    _runs: dict[Run, Runs] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, column: pa.Array) -> Batch:
        text = joined(column)
        return cls(column, non_empty(column), text, digits_are_ascii(text))

    @functools.cached_property
    def text_bytes(self) -> bytes:
        """``text`` as one bytes object (what an RE2::Set searches)."""
        data = self.text.buffers()[2]
        return b"" if data is None else data.to_pybytes()

    @functools.cached_property
    def digit_counts(self) -> np.ndarray:
        """How many ASCII digits each cell holds (:func:`ascii_digits`)."""
        return ascii_digits(self.column)

    @functools.cached_property
    def trimmed(self) -> pa.Array:
        """The cells without leading and trailing spaces and tabs."""
        return pc.utf8_trim(self.column, " \t")

    @functools.cached_property
    def trimmed_bytes(self) -> np.ndarray:
        """Each trimmed cell's length in bytes."""
        return np.diff(cell_offsets(self.trimmed))

    def runs(self, run: Run) -> Runs:
        """The runs ``run`` describes in the batch (:func:`retirement.inventory.tokens.
        find_runs`), found once for every rule that looks for them."""
        if run not in self._runs:
            self._runs[run] = find_runs(self.column, run)
        return self._runs[run]

    def has(self, pattern: str) -> bool:
        """``pattern`` matches somewhere in ``text`` in multi-line mode (``^`` and ``$`` at
        each cell's edges): some cell may match it."""
        if pattern not in self._known:
            found = pc.match_substring_regex(self.text, f"(?m){pattern}")[0].as_py()
            self._known[pattern] = bool(found)
        return self._known[pattern]

    def search(self, patterns: Iterable[str]) -> None:
        """Find out ``has`` of every pattern in one pass of an RE2::Set over ``text``."""
        todo = tuple(dict.fromkeys(p for p in patterns if p not in self._known))
        found = search_set(todo) if todo else None
        if found is None:
            return  # nothing to do, or a pattern the set refuses: ``has`` one by one
        hits = set(found.Match(self.text_bytes) or ())
        self._known.update((p, i in hits) for i, p in enumerate(todo))

    def loose(self, rule: Rule) -> str | None:
        """The rule's prefilter, in its ASCII-digit form when the batch allows it."""
        if rule.loose is None or not self.ascii_digits:
            return rule.loose
        return ascii_digit_form(rule.loose)


@functools.lru_cache(maxsize=64)
def search_set(patterns: tuple[str, ...]) -> re2.Set | None:
    """One RE2::Set of ``patterns`` in multi-line mode: which of them match somewhere in a
    text, in one pass. None when RE2 refuses one of them (the caller tests them one by one)."""
    found = re2.Set.SearchSet(re2.Options())
    try:
        for pattern in patterns:
            found.Add(f"(?m){pattern}")
        found.Compile()
    except (re2.error, ValueError, TypeError):
        return None
    return found
