"""Person names and addresses over a whole Arrow column (dictionaries as Arrow set lookups).

The common shapes are decided in C: a cell of 2-4 Han characters by its surname (one or
two characters looked up with ``is_in``), a cell of two or three capitalised ASCII words by
a pinyin surname; company words rule a cell out. Any other cell that could still be a name
(letters and spaces only, or a marker such as 姓名：) goes to the reference detector.
Addresses need no reference: both of their patterns run in RE2 as they are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retirement.inventory import dictionaries as data

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.inventory.cells import Batch
    from retirement.inventory.detect import Detector
    from retirement.inventory.engine import Hits
    from retirement.inventory.vectorized import Mask

_HAN = r"\x{4e00}-\x{9fff}"
_SPACE = r"\s\p{Z}\x0b\x1c-\x1f\x{85}"
_HAN_CELL = f"^[{_HAN}]{{2,4}}$"
_SUFFIX = "(?:" + "|".join(data.NAME_SUFFIXES) + ")$"
_EN_CELL = "^[A-Z][a-z]+(?: [A-Z][a-z]+){1,2}$"
_COMPANY = "(?i)(?:" + "|".join(re.escape(w) for w in data.COMPANY_WORDS) + ")"
_PINYIN = "(?i)(?:^| )(?:" + "|".join(sorted(data.PINYIN_SURNAMES)) + ")(?: |$)"
# Could be a whole name after Python's strip(): letters and whitespace, not all ASCII lowercase.
_NAME_LIKE = f"^[\\p{{L}}{_SPACE}]*[^\\x00-\\x40\\x5b-\\x7f][\\p{{L}}{_SPACE}]*$"
# Every name, and every marker, has a non-ASCII character or an ASCII capital followed by a
# small letter (an ASCII name is two or three capitalised words).
_MAY_NAME = "[A-Z][a-z]|[\\x{80}-\\x{10ffff}]"
_MARKER = "(?:" + "|".join(data.NAME_MARKERS) + f")[{_SPACE}]*[:：]"
_NAME_LIKE_OR_MARKED = f"(?:{_NAME_LIKE})|{_MARKER}"
# An ASCII character no name-like cell holds (not a letter, not whitespace).
_ASCII_NOT_LETTER_OR_SPACE = "[\\x00-\\x08\\x0e-\\x1b!-@\\[-`{-\\x7f]"
_SURNAMES = pa.array(sorted(data.SURNAMES), type=pa.string())
_COMPOUND = pa.array(sorted(data.COMPOUND_SURNAMES), type=pa.string())
_ADDRESS_ZH = (
    f"(?:[省市区县州]|北京|上海|天津|重庆|香港|澳门)[{_HAN}0-9]{{0,30}}?(?:"
    + "|".join(data.STREET_MARKERS)
    + ")"
)
_ADDRESS_EN = (
    r"\b[0-9]{1,5}[ \t]+(?:[A-Z][A-Za-z]+[ \t]+){1,4}(?:"
    + "|".join(w.capitalize() for w in data.EN_STREET_WORDS)
    + r")\b"
)
# What a batch is searched for before its cells are (``Batch.search``, with the rules').
BATCH_PATTERNS = (_MAY_NAME, _ADDRESS_ZH, _ADDRESS_EN)


def _mask(values: pa.Array) -> Mask:
    return np.asarray(pc.fill_null(values, False), dtype=bool)


def _match(column: pa.Array, pattern: str) -> Mask:
    return _mask(pc.match_substring_regex(column, pattern))


def _in_batch(batch: Batch | None, pattern: str) -> bool:
    """Whether ``pattern`` can match a cell of the batch (None: unknown). The patterns here
    have no anchors, so a cell's match is a match of the cells joined."""
    return batch is None or batch.has(pattern)


def _byte_lengths(column: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    return np.diff(offsets)


def _first_bytes(column: pa.Array) -> np.ndarray:
    """Each cell's first byte (0 for an empty cell): U+4E00-U+9FFF start with 0xE4-0xE9."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    data = column.buffers()[2]
    if data is None or not len(data):
        return np.zeros(len(column), dtype=np.uint8)
    body = np.frombuffer(data, dtype=np.uint8)
    first = body[np.minimum(offsets[:-1], len(body) - 1)]
    return np.where(offsets[1:] > offsets[:-1], first, 0)


def _where(pool: Mask, cells: pa.Array, test: Callable[[pa.Array], Mask]) -> Mask:
    """``test`` over the cells of ``pool`` only; False elsewhere."""
    out = np.zeros(len(cells), dtype=bool)
    index = np.flatnonzero(pool)
    if len(index):
        out[index] = test(cells.take(pa.array(index)))
    return out


def _han_names(cells: pa.Array) -> tuple[Mask, Mask]:
    """(2-4 Han characters and no courtesy suffix, of which those a surname starts)."""
    han = _match(cells, _HAN_CELL) & ~_match(cells, _SUFFIX)
    short = _mask(pc.less_equal(pc.utf8_length(cells), 3))
    first = pc.utf8_slice_codeunits(cells, 0, 1)
    first_two = pc.utf8_slice_codeunits(cells, 0, 2)
    by_surname = _mask(pc.is_in(first_two, value_set=_COMPOUND)) | (
        short & _mask(pc.is_in(first, value_set=_SURNAMES))
    )
    return han, han & by_surname


def _english_names(cells: pa.Array) -> tuple[Mask, Mask]:
    """(two or three capitalised words, of which those with a pinyin surname)."""
    english = _match(cells, _EN_CELL)
    return english, english & _match(cells, _PINYIN)


def _fast_names(trimmed: pa.Array) -> tuple[Mask, Mask]:
    """(cells of a common shape, which of them are names) over cells trimmed of spaces/tabs.

    Each shape is tried only on the cells of its byte lengths and first bytes: 2-4 Han
    characters are 6-12 bytes starting with 0xE4-0xE9, two or three capitalised ASCII words
    of at most 40 characters 5-40 bytes starting with A-Z."""
    size, first = _byte_lengths(trimmed), _first_bytes(trimmed)
    han_pool = (size >= 6) & (size <= 12) & (first >= 0xE4) & (first <= 0xE9)
    han, han_name = _pair(trimmed, han_pool, _han_names)
    en_pool = (size >= 5) & (size <= 40) & (first >= ord("A")) & (first <= ord("Z"))
    english, en_name = _pair(trimmed, en_pool, _english_names)
    shaped = han | english
    company = _where(shaped, trimmed, lambda c: _match(c, _COMPANY))
    return shaped, ~company & (han_name | en_name)


def _pair(
    cells: pa.Array, pool: Mask, test: Callable[[pa.Array], tuple[Mask, Mask]]
) -> tuple[Mask, Mask]:
    """``test``'s two masks over the cells of ``pool`` only; False elsewhere."""
    first = np.zeros(len(cells), dtype=bool)
    second = np.zeros(len(cells), dtype=bool)
    index = np.flatnonzero(pool)
    if len(index):
        a, b = test(cells.take(pa.array(index)))
        first[index], second[index] = a, b
    return first, second


def _name_like_or_marked(cells: pa.Array, pool: Mask) -> Mask:
    """``_NAME_LIKE`` or ``_MARKER`` over the ``pool`` cells. A name-like cell has no ASCII
    character but letters and whitespace, and a marked one a colon: cheap tests pick the
    cells worth the Unicode-class regex (slow over Han text)."""
    out = np.zeros(len(cells), dtype=bool)
    index = np.flatnonzero(pool)
    if not len(index):
        return out
    some = cells.take(pa.array(index))
    other_ascii = _match(some, _ASCII_NOT_LETTER_OR_SPACE)
    marked = _mask(pc.match_substring(some, ":")) | _mask(pc.match_substring(some, "："))
    worth = np.flatnonzero(~other_ascii | marked)
    if len(worth):
        out[index[worth]] = _match(some.take(pa.array(worth)), _NAME_LIKE_OR_MARKED)
    return out


def person_name(
    reference: Detector, column: pa.Array, filled: Mask, batch: Batch | None = None
) -> Hits:
    """Name hits: common shapes in C, other name-like or marked cells by the reference."""
    from retirement.inventory.engine import Hits

    hit = np.zeros(len(column), dtype=bool)
    whole = np.zeros(len(column), dtype=bool)
    if not _in_batch(batch, _MAY_NAME):
        return Hits(hit, whole)
    index = np.flatnonzero(filled & _match(column, _MAY_NAME))
    if not len(index):
        return Hits(hit, whole)
    cells = column.take(pa.array(index))
    shaped, named = _fast_names(pc.utf8_trim(cells, " \t"))
    hit[index[shaped & named]] = True
    whole[index[shaped & named]] = True
    rest = ~shaped & _name_like_or_marked(cells, ~shaped)
    for i, text in zip(index[rest].tolist(), cells.filter(pa.array(rest)).to_pylist(), strict=True):
        found = reference.find(text)
        if found:
            hit[i] = True
            whole[i] = found == [text.strip()]
    return Hits(hit, whole)


def address(column: pa.Array, filled: Mask, batch: Batch | None = None) -> Mask:
    """Address hits, exactly as the reference: a Chinese address in a cell of 6+ characters,
    or an English street address in an ASCII cell (``batch``: the batch's shared state, to
    skip a pattern no cell can match in one pass)."""
    none = np.zeros(len(column), dtype=bool)
    zh = _match(column, _ADDRESS_ZH) if _in_batch(batch, _ADDRESS_ZH) else none
    en = (
        _mask(pc.string_is_ascii(column)) & _match(column, _ADDRESS_EN)
        if _in_batch(batch, _ADDRESS_EN)
        else none
    )
    if not (zh.any() or en.any()):
        return none
    long_enough = _mask(pc.greater_equal(pc.utf8_length(column), 6))
    return filled & long_enough & (zh | en)
