"""The column engine: every detector over a whole Arrow column of a batch at once.

Per detector and column: an RE2 prefilter over the column (pyarrow.compute, in C, no Python
per cell) keeps the candidate cells; those that are one identifier exactly (an anchored
shape) are checked together in numpy (:mod:`retirement.inventory.vectorized`); the rest,
identifiers inside longer text, are found by the reference regex and their matches checked
in one vectorized call. The answer per cell is the reference's
(:meth:`retirement.inventory.detect.Detector.hit`); a property test holds the two equal.

Each hit is also told apart as *whole* (the cell, spaces trimmed, is the identifier) or
*embedded* (the identifier sits inside longer text, as in a ``remark``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retirement.inventory import names
from retirement.inventory.detect import BUILTIN, ColumnScan
from retirement.inventory.rules import rules_for

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from retirement.inventory.detect import Detector
    from retirement.inventory.rules import Rule
    from retirement.inventory.vectorized import Mask

_BLANK = r"^[\s\p{Z}\x0b\x1c-\x1f\x{85}]*$"


@dataclass(frozen=True)
class Hits:
    """Per cell of a column: a hit of the detector, and whether the cell is the identifier."""

    hit: Mask
    whole: Mask


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


def _offsets(column: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    return offsets[column.offset : column.offset + len(column) + 1]


def non_empty(column: pa.Array) -> Mask:
    """Cells that hold something other than whitespace: decided by their first byte in numpy,
    and by the ``_BLANK`` regex for the cells that start with a byte a blank can start with."""
    offsets, data = _offsets(column), column.buffers()[2]
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


def _match(column: pa.Array, pattern: str) -> Mask:
    return np.asarray(pc.fill_null(pc.match_substring_regex(column, pattern), False), dtype=bool)


def joined(column: pa.Array) -> pa.Array:
    """The batch's cells as one string, each after a line break: one array of one value.

    Built in numpy from the column's own buffers (no Python object per cell). A NULL cell
    contributes what its slot holds (normally nothing), so a search over it is a superset."""
    offsets = _offsets(column)
    data = column.buffers()[2]
    body = (
        np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.zeros(0, dtype=np.uint8)
    )
    text = np.insert(body, offsets[:-1] - offsets[0], ord("\n"))
    ends = np.array([0, len(text)], dtype=np.int32)
    return pa.StringArray.from_buffers(1, pa.py_buffer(ends), pa.py_buffer(text))


def ascii_digits(column: pa.Array) -> np.ndarray:
    """How many ASCII digits each cell holds, counted in numpy over the column's buffers."""
    offsets = _offsets(column)
    data = column.buffers()[2]
    if data is None:
        return np.zeros(len(column), dtype=np.int64)
    body = np.frombuffer(data, dtype=np.uint8)[: offsets[-1]]
    seen: np.ndarray = np.concatenate(([0], np.cumsum((body >= ord("0")) & (body <= ord("9")))))
    counts: np.ndarray = seen[offsets[1:]] - seen[offsets[:-1]]
    return counts


@functools.cache
def _other_digits() -> str:
    """An RE2 class of every decimal digit but 0-9 (Python's table: what ``\\d`` of the
    reference's regexes takes), as code point ranges."""
    import sys

    found = re.finditer(r"\d", "".join(map(chr, range(0x80, sys.maxunicode + 1))))
    points = [m.start() + 0x80 for m in found]
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
    if pc.string_is_ascii(text)[0].as_py():
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

    @classmethod
    def of(cls, column: pa.Array) -> Batch:
        text = joined(column)
        return cls(column, non_empty(column), text, digits_are_ascii(text))

    def loose(self, rule: Rule) -> str | None:
        """The rule's prefilter, in its ASCII-digit form when the batch allows it."""
        if rule.loose is None or not self.ascii_digits:
            return rule.loose
        return ascii_digit_form(rule.loose)


def _text(batch: Batch | None) -> pa.Array | None:
    return None if batch is None else batch.text


def batch_may_match(batch: Batch, rule: Rule) -> bool:
    """False only when no cell of the batch (``text``: :func:`joined`) can match
    ``rule.loose``: one RE2 pass over the batch instead of one search per cell.

    Only for joinable rules: their loose pattern's edges (``^``, ``$``, a non-alphanumeric
    character) hold at a line break, so in multi-line mode every cell's match is a match of
    the joined text."""
    loose = batch.loose(rule)
    if not rule.joinable or loose is None:
        return True
    return bool(pc.match_substring_regex(batch.text, f"(?m){loose}")[0].as_py())


def rule_hits(rule: Rule, column: pa.Array, filled: Mask, batch: Batch | None = None) -> Hits:
    """Which cells of ``column`` hold an identifier of ``rule`` (``filled``: non-empty cells;
    ``batch``: what all rules share of this batch, to skip a rule no cell can match)."""
    if batch is not None and not batch_may_match(batch, rule):
        none = np.zeros(len(column), dtype=bool)
        return Hits(none, none.copy())
    if rule.kind == "person_name":
        return names.person_name(rule.reference, column, filled, _text(batch))
    if rule.kind == "address":
        hit = names.address(column, filled, _text(batch))
        return Hits(hit, hit)
    loose = rule.loose if batch is None else batch.loose(rule)
    candidates = filled & _match(column, loose) if loose is not None else filled.copy()
    hit = np.zeros(len(column), dtype=bool)
    whole = np.zeros(len(column), dtype=bool)
    if rule.whole is not None and candidates.any():
        index = np.flatnonzero(candidates)
        trimmed = pc.utf8_trim(column.take(pa.array(index)), " \t")
        shaped = _match(trimmed, rule.whole)
        ok = shaped.copy()
        if rule.validate is not None and shaped.any():
            ok[shaped] = rule.validate(trimmed.filter(pa.array(shaped)))
        hit[index[ok]] = True
        whole[index[ok]] = True
        candidates[index[shaped]] = False
    if candidates.any():
        index = np.flatnonzero(candidates)
        if rule.extract is not None and batch is not None and batch.ascii_digits:
            index = _first_matches(rule, rule.extract, column, index, hit, whole)
        if len(index):
            _embedded(rule, column, index, hit, whole)
    return Hits(hit, whole)


_ROUNDS = 3  # matches tried per cell in C before the reference takes over


def _first_matches(
    rule: Rule, pattern: str, column: pa.Array, index: np.ndarray, hit: Mask, whole: Mask
) -> np.ndarray:
    """The candidates' identifiers in C, first match by first match (``rule.extract``), each
    round's checked at once: a cell whose match passes is a hit, a cell with no (further)
    match is none. Returns the cells still undecided after ``_ROUNDS`` matches."""
    cells = column.take(pa.array(index))
    for round_ in range(_ROUNDS):
        first = pc.extract_regex(cells, pattern)
        has = np.asarray(first.is_valid(), dtype=bool)
        found = first.field("id")
        ok = np.zeros(len(index), dtype=bool)
        if rule.validate is not None and has.any():
            at = np.flatnonzero(has)
            ok[at] = rule.validate(found.take(pa.array(at)))
        hit[index[ok]] = True
        if round_ == 0:  # a cell that is its identifier has no second one
            trimmed = pc.utf8_trim_whitespace(cells)
            whole[index[ok & np.asarray(pc.fill_null(pc.equal(trimmed, found), False))]] = True
        left = has & ~ok
        index, cells = index[left], cells.filter(pa.array(left))
        if not len(index):
            break
        cells = pc.replace_substring_regex(cells, pattern, r"\10\3", max_replacements=1)
    return index


def _candidates_text(
    rule: Rule, column: pa.Array, index: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The candidate cells as Python text, after the reference's prefilter (vectorized when
    the rule says how many ASCII digits it needs)."""
    cells = column.take(pa.array(index))
    if rule.min_digits is not None:
        if rule.min_digits:
            count = ascii_digits(cells)
            enough = count >= rule.min_digits
            index, cells = index[enough], cells.filter(pa.array(enough))
        return index, cells.to_pylist()
    prefilter = rule.reference._prefilter  # noqa: SLF001
    texts = cells.to_pylist()
    if prefilter is None:
        return index, texts
    kept = [prefilter(t) for t in texts]
    return index[np.asarray(kept, dtype=bool)], [t for t, k in zip(texts, kept, strict=True) if k]


def _matches(rule: Rule, texts: list[str]) -> tuple[list[int], list[str], list[bool]]:
    """(cell, identifier, cell is the identifier) of every match of the reference's regex.

    A rule whose matches never hold a line break runs once over the cells joined by
    line breaks (one pass in C); any other cell by cell."""
    det = rule.reference
    finditer, group = det._pattern.finditer, det._group  # noqa: SLF001
    rows: list[int] = []
    found: list[str] = []
    exact: list[bool] = []
    if rule.joinable:
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        starts = np.concatenate(([0], np.cumsum(lengths + 1)))
        spans = [(m.start(), m.end(), m.group(group)) for m in finditer("\n".join(texts))]
        if not spans:
            return rows, found, exact
        begin, end, found = (list(t) for t in zip(*spans, strict=True))
        cell = np.searchsorted(starts, begin, side="right") - 1
        lead, trail = _padding(texts)
        first = starts[cell] + lead[cell]
        last = starts[cell] + lengths[cell] - trail[cell]
        same = (np.asarray(begin) == first) & (np.asarray(end) == last)
        return cell.tolist(), found, same.tolist()
    for i, text in enumerate(texts):
        stripped = text.strip()
        for m in finditer(text):
            rows.append(i)
            found.append(m.group(group))
            exact.append(m.group(0) == stripped)
    return rows, found, exact


def _padding(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Leading and trailing whitespace of each text, in characters."""
    cells = pa.array(texts, type=pa.string())
    size = np.asarray(pc.utf8_length(cells))
    lead = size - np.asarray(pc.utf8_length(pc.utf8_ltrim_whitespace(cells)))
    trail = size - np.asarray(pc.utf8_length(pc.utf8_rtrim_whitespace(cells)))
    return lead, trail


def _embedded(rule: Rule, column: pa.Array, index: np.ndarray, hit: Mask, whole: Mask) -> None:
    """The reference regex over the remaining candidates; all matches checked at once."""
    index, texts = _candidates_text(rule, column, index)
    rows, found, exact = _matches(rule, texts)
    if not rows:
        return
    det = rule.reference
    if rule.validate is not None:
        ok = rule.validate(pa.array(found, type=pa.string()))
    elif det._check is not None:  # noqa: SLF001 (IP addresses: ipaddress decides, per match)
        ok = np.fromiter(map(det._check, found), dtype=bool, count=len(found))  # noqa: SLF001
    else:
        ok = np.ones(len(rows), dtype=bool)
    at = index[np.asarray(rows, dtype=np.int64)]
    hit[at[ok]] = True
    whole[at[ok & np.asarray(exact, dtype=bool)]] = True


def column_hits(rules: Mapping[str, Rule], column: pa.Array) -> tuple[int, dict[str, Hits]]:
    """(non-empty cells, hits per detector) of one column of one batch."""
    batch = Batch.of(column)
    return int(batch.filled.sum()), {
        name: rule_hits(rule, column, batch.filled, batch) for name, rule in rules.items()
    }


class EngineScanner:
    """Streaming accumulator over a column's batches (same answer as ``ColumnScanner``)."""

    def __init__(
        self, detectors: Mapping[str, Detector] = BUILTIN, rules: Mapping[str, Rule] | None = None
    ) -> None:
        self._rules = rules_for(detectors) if rules is None else rules
        self._non_empty = 0
        self._hits = dict.fromkeys(detectors, 0)
        self._whole = dict.fromkeys(detectors, 0)

    def feed(self, values: Iterable[object] | pa.Array | pa.ChunkedArray) -> None:
        column = to_strings(values)
        if len(column) == 0:
            return
        filled, hits = column_hits(self._rules, column)
        self._non_empty += filled
        for name, h in hits.items():
            self._hits[name] += int(h.hit.sum())
            self._whole[name] += int(h.whole.sum())

    def result(self) -> ColumnScan:
        return ColumnScan(
            self._non_empty,
            {k: v for k, v in self._hits.items() if v},
            {k: v for k, v in self._whole.items() if v},
        )
