"""The column engine: every detector over a whole Arrow column of a batch at once.

Per detector and column of a batch (:class:`retirement.inventory.cells.Batch`): the cells
that are one identifier exactly (an anchored shape, tried on the cells of its byte lengths)
are checked together in numpy (:mod:`retirement.inventory.vectorized`); an RE2 prefilter
over the other cells (pyarrow.compute, in C, no Python per cell) keeps those that may hold
one inside longer text, whose identifiers RE2 extracts match by match and numpy checks
(``_first_matches``); what that leaves undecided goes to the reference regex, its matches
checked in one vectorized call. The answer per cell is the reference's
(:meth:`retirement.inventory.detect.Detector.hit`); property tests hold the two equal.

Each hit is also told apart as *whole* (the cell, spaces trimmed, is the identifier) or
*embedded* (the identifier sits inside longer text, as in a ``remark``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retirement.inventory import names
from retirement.inventory.cells import (
    Batch,
    ascii_digits,
    cell_offsets,
    match,
    to_strings,
)
from retirement.inventory.detect import BUILTIN, ColumnScan
from retirement.inventory.rules import rules_for
from retirement.inventory.tokens import Run, Runs, find_runs

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from retirement.inventory.detect import Detector
    from retirement.inventory.rules import Rule
    from retirement.inventory.vectorized import Mask

__all__ = ["EngineScanner", "Hits", "column_hits", "rule_hits", "to_strings"]


@dataclass(frozen=True)
class Hits:
    """Per cell of a column: a hit of the detector, and whether the cell is the identifier."""

    hit: Mask
    whole: Mask


def batch_may_match(batch: Batch, rule: Rule) -> bool:
    """False only when no cell of the batch (``text``: :func:`joined`) can match
    ``rule.loose``: one RE2 pass over the batch instead of one search per cell.

    Only for joinable rules: their loose pattern's edges (``^``, ``$``, a non-alphanumeric
    character) hold at a line break, so in multi-line mode every cell's match is a match of
    the joined text."""
    loose = batch.loose(rule)
    if not rule.joinable or loose is None:
        return True
    return batch.has(loose)


def batch_rules(batch: Batch, rules: Mapping[str, Rule]) -> set[str]:
    """The rules that may match some cell of the batch, as :func:`batch_may_match` decides
    them; every joinable rule's pattern, and the names' and addresses' batch patterns, are
    searched together in one pass of an RE2::Set over the joined text."""
    looses = (batch.loose(r) for r in rules.values() if r.joinable)
    batch.search([*(p for p in looses if p is not None), *names.BATCH_PATTERNS])
    return {name for name, rule in rules.items() if batch_may_match(batch, rule)}


def rule_hits(
    rule: Rule,
    column: pa.Array,
    filled: Mask,
    batch: Batch | None = None,
    may_match: bool | None = None,
) -> Hits:
    """Which cells of ``column`` hold an identifier of ``rule`` (``filled``: non-empty cells;
    ``batch``: what all rules share of this batch, to skip a rule no cell can match;
    ``may_match``: that test's answer where the caller has it, see :func:`batch_rules`)."""
    if may_match is None:
        may_match = batch is None or batch_may_match(batch, rule)
    if not may_match:
        none = np.zeros(len(column), dtype=bool)
        return Hits(none, none.copy())
    if rule.kind == "person_name":
        return names.person_name(rule.reference, column, filled, batch)
    if rule.kind == "address":
        hit = names.address(column, filled, batch)
        return Hits(hit, hit)
    batch = Batch.of(column) if batch is None else batch
    hit = np.zeros(len(column), dtype=bool)
    whole = np.zeros(len(column), dtype=bool)
    rest = _whole_cells(rule, batch, filled, hit, whole)
    if rule.run is not None and batch.ascii_digits and rest.any():
        rest = _runs(rule, batch, rule.run, rest, hit, whole)
    loose = batch.loose(rule)
    candidates = rest & _match_in(column, rest, loose) if loose is not None else rest
    if candidates.any():
        index = np.flatnonzero(candidates)
        if rule.extract is not None and batch.ascii_digits:
            digits = batch.digit_counts[index]
            index = _first_matches(rule, rule.extract, column, index, digits, hit, whole)
        if len(index):
            _embedded(rule, column, index, hit, whole)
    return Hits(hit, whole)


def _whole_cells(rule: Rule, batch: Batch, filled: Mask, hit: Mask, whole: Mask) -> Mask:
    """Decide the cells that are one identifier exactly (``rule.whole``, on the cells of its
    byte lengths only); the filled cells left for the search inside text are returned. Every
    cell the shape takes also matches ``rule.loose``, so no cell is decided twice."""
    if rule.whole is None:
        return filled
    pool = filled
    if rule.whole_bytes is not None:
        size = batch.trimmed_bytes
        pool = filled & (size >= rule.whole_bytes[0]) & (size <= rule.whole_bytes[1])
    index = np.flatnonzero(pool)
    if not len(index):
        return filled
    every = len(index) == len(batch.column)
    trimmed = batch.trimmed if every else batch.trimmed.take(pa.array(index))
    shaped = rule.shape(trimmed) if rule.shape is not None else match(trimmed, rule.whole)
    ok = shaped.copy()
    if rule.validate is not None and shaped.any():
        ok[shaped] = rule.validate(trimmed.filter(pa.array(shaped)))
    hit[index[ok]] = True
    whole[index[ok]] = True
    rest = filled.copy()
    rest[index[shaped]] = False
    return rest


def _match_in(column: pa.Array, cells: Mask, pattern: str) -> Mask:
    """``pattern`` over the ``cells`` of ``column`` (the whole column when that is most)."""
    count = int(cells.sum())
    if count == 0:
        return cells
    if count * 2 > len(column):
        return match(column, pattern)
    out = np.zeros(len(column), dtype=bool)
    index = np.flatnonzero(cells)
    out[index] = match(column.take(pa.array(index)), pattern)
    return out


def _runs(rule: Rule, batch: Batch, run: Run, rest: Mask, hit: Mask, whole: Mask) -> Mask:
    """Decide the ``rest`` cells by their runs (``rule.run``, :mod:`retirement.inventory.
    tokens`, found once per batch for every rule that looks for them): each run of the rule's
    shape is checked at once; a cell is a hit when one passes, whole when it is that run
    alone. Returns the cells left for the search inside text (those with a joiner)."""
    count = int(rest.sum())
    if count * 2 > len(rest):  # most cells: the batch's runs, shared with other rules
        found = batch.runs(run)
    else:  # a few cells (the rest of a column of whole identifiers): theirs only
        index = np.flatnonzero(rest)
        found = find_runs(batch.column.take(pa.array(index)), run)
        joined = np.zeros(len(rest), dtype=bool)
        joined[index] = found.joined
        found = Runs(index[found.cell], found.runs, joined)
    keep = rest[found.cell]
    if keep.any():
        cell, runs = found.cell[keep], found.runs.filter(pa.array(keep))
        ok = rule.shape(runs) if rule.shape is not None else match(runs, rule.whole or "^$")
        if rule.validate is not None and ok.any():
            ok[ok] = rule.validate(runs.filter(pa.array(ok)))
        at = cell[ok]
        hit[at] = True
        if len(at):
            trimmed = pc.utf8_trim_whitespace(batch.column.take(pa.array(at)))
            alone = pc.fill_null(pc.equal(trimmed, runs.filter(pa.array(ok))), False)
            whole[at[np.asarray(alone, dtype=bool)]] = True
    left: Mask = rest & found.joined
    return left


_ROUNDS = 3  # matches tried per cell in C before the reference takes over


def _first_matches(
    rule: Rule,
    pattern: str,
    column: pa.Array,
    index: np.ndarray,
    digits: np.ndarray,
    hit: Mask,
    whole: Mask,
) -> np.ndarray:
    """The candidates' identifiers in C, first match by first match (``rule.extract``), each
    round's checked at once: a cell whose match passes is a hit, a cell with no (further)
    match is none (``digits``: the candidates' ASCII digits). Returns the cells still
    undecided after ``_ROUNDS`` matches."""
    cells = column.take(pa.array(index))
    size = np.diff(cell_offsets(cells))
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
        more = round_ + 2  # identifiers a cell must have room for to hold another
        left = has & ~ok & (digits >= more * rule.match_digits) & (size >= more * rule.match_bytes)
        index, cells = index[left], cells.filter(pa.array(left))
        digits, size = digits[left], size[left]
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
    filled, hits = _cell_hits(rules, column)
    return int(filled.sum()), hits


def _cell_hits(rules: Mapping[str, Rule], column: pa.Array) -> tuple[Mask, dict[str, Hits]]:
    batch = Batch.of(column)
    may = batch_rules(batch, rules)
    return batch.filled, {
        name: rule_hits(rule, column, batch.filled, batch, name in may)
        for name, rule in rules.items()
    }


class EngineScanner:
    """Streaming accumulator over a column's batches (same answer as ``ColumnScanner``).

    A batch with few distinct values (a status, a city, a boilerplate remark) is scanned
    once per distinct value, each value's hits weighted by how many cells hold it: a cell's
    answer depends on its value alone, so the counts are those of every cell. Whether a
    batch pays is measured (Arrow's dictionary encoding, in C); one that does not sends the
    column's next ``RETRY_AFTER`` batches cell by cell before it is measured again."""

    DISTINCT_SHARE = 0.5  # at most this many distinct values per cell: scanned by value
    RETRY_AFTER = 8

    def __init__(
        self,
        detectors: Mapping[str, Detector] = BUILTIN,
        rules: Mapping[str, Rule] | None = None,
        *,
        by_value: bool = True,
    ) -> None:
        self._rules = rules_for(detectors) if rules is None else rules
        self._non_empty = 0
        self._hits = dict.fromkeys(detectors, 0)
        self._whole = dict.fromkeys(detectors, 0)
        self._by_value = by_value
        self._cell_by_cell_for = 0  # batches to go before measuring distinct values again
        self.batches_by_value = 0

    def feed(self, values: Iterable[object] | pa.Array | pa.ChunkedArray) -> None:
        column = to_strings(values)
        if len(column) == 0:
            return
        encoded = self._distinct(column)
        if encoded is None:
            filled, hits = _cell_hits(self._rules, column)
            self._add(filled, hits, None)
            return
        self.batches_by_value += 1
        values_ = encoded.dictionary
        if len(values_):
            index = np.asarray(encoded.indices.drop_null(), dtype=np.intp)
            cells = np.bincount(index, minlength=len(values_))
            filled, hits = _cell_hits(self._rules, values_)
            self._add(filled, hits, cells)

    def _distinct(self, column: pa.Array) -> pa.DictionaryArray | None:
        """The batch as distinct values and indices, when that pays (see the class)."""
        if not self._by_value:
            return None
        if self._cell_by_cell_for:
            self._cell_by_cell_for -= 1
            return None
        encoded = pc.dictionary_encode(column)
        if len(encoded.dictionary) > self.DISTINCT_SHARE * len(column):
            self._cell_by_cell_for = self.RETRY_AFTER
            return None
        return encoded

    def _add(self, filled: Mask, hits: Mapping[str, Hits], cells: np.ndarray | None) -> None:
        """Count ``hits``: per cell, or per distinct value held by ``cells`` cells."""

        def count(mask: Mask) -> int:
            return int(mask.sum()) if cells is None else int(cells[mask].sum())

        self._non_empty += count(filled)
        for name, h in hits.items():
            self._hits[name] += count(h.hit)
            self._whole[name] += count(h.whole)

    def result(self) -> ColumnScan:
        return ColumnScan(
            self._non_empty,
            {k: v for k, v in self._hits.items() if v},
            {k: v for k, v in self._whole.items() if v},
        )
