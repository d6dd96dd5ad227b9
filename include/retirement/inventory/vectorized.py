"""Check digits over whole arrays: numpy on fixed-width byte matrices, no Python per value.

Each validator takes an Arrow string array of candidate identifiers (the matches a pattern
found) and answers a boolean numpy array, the same answer as the per-value function in
:mod:`retirement.model.identifiers` for every element.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retirement.model.identifiers import PROVINCES, USCC_ALPHABET

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    Mask = NDArray[np.bool_]
    Validator = Callable[[pa.Array], Mask]

_RIC_WEIGHTS32 = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.float32)
_RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_USCC_WEIGHTS = np.array(
    [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.float32
)
_USCC_VALUE = np.full(256, 31, dtype=np.uint8)
for _i, _c in enumerate(USCC_ALPHABET):
    _USCC_VALUE[ord(_c)] = _i
_PROVINCE = np.zeros(100, dtype=bool)
for _p in PROVINCES:
    _PROVINCE[int(_p)] = True
_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_ZERO = ord("0")


def _strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    return pc.fill_null(values, "")


def byte_matrix(values: pa.Array, width: int) -> tuple[NDArray[np.uint8], Mask]:
    """(rows x ``width`` bytes of every value exactly ``width`` bytes long, which rows)."""
    values = _strings(values)
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset : values.offset + n + 1
    ]
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    keep = lengths == width
    if keep.all() and n:  # one run of equal values: a view, nothing copied
        return raw[offsets[0] : offsets[-1]].reshape(n, width), keep
    starts = offsets[:-1][keep]
    matrix = (
        raw[starts[:, None] + np.arange(width)] if len(starts) else np.zeros((0, width), np.uint8)
    )
    return matrix, keep


def _bools(values: object) -> Mask:
    return np.asarray(values, dtype=np.bool_)


def _spread(keep: Mask, ok: Mask) -> Mask:
    out = np.zeros(len(keep), dtype=bool)
    out[keep] = ok
    return out


def _real_date(year: NDArray[np.int64], month: NDArray[np.int64], day: NDArray[np.int64]) -> Mask:
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    limit = _DAYS[np.clip(month, 0, 12)] - ((month == 2) & ~leap)
    return _bools((year >= 1900) & (year <= 2099) & month_ok & (day >= 1) & (day <= limit))


def _columns(m: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The matrix transposed, one contiguous row per character position: numpy reduces
    over a few long rows far faster than over many short ones."""
    return np.ascontiguousarray(m.T)


def _number(f: NDArray[np.float32], a: int, b: int) -> NDArray[np.int64]:
    total = np.zeros(f.shape[1], dtype=np.float32)
    for row in f[a:b]:
        total = total * 10 + row
    return total.astype(np.int64)


def resident_id_matrix(m: NDArray[np.uint8]) -> Mask:
    """GB 11643 over rows of 18 bytes: digits, province, birth date, MOD 11-2 check."""
    t = _columns(m)
    d = t[:17] - np.uint8(_ZERO)  # a byte that is no digit wraps to 10..255
    digits = _bools(d.max(axis=0, initial=0) < 10)
    f = d.astype(np.float32)  # BLAS does the sums; exact for these small integers
    check = _RIC_CHECK[(_RIC_WEIGHTS32 @ f).astype(np.int64) % 11]
    last = t[17]
    last = np.where(last == ord("x"), ord("X"), last)
    province = _PROVINCE[np.minimum(_number(f, 0, 2), 99)]
    born = _real_date(_number(f, 6, 10), _number(f, 10, 12), _number(f, 12, 14))
    return _bools(digits & province & born & (check == last))


def resident_id(values: pa.Array) -> Mask:
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, resident_id_matrix(matrix))


def _uscc_matrix(matrix: NDArray[np.uint8]) -> Mask:
    v = _USCC_VALUE[_columns(matrix)]  # 31 marks a byte outside the alphabet
    alphabet = _bools(v.max(axis=0, initial=0) < 31)
    total = (_USCC_WEIGHTS @ v[:17].astype(np.float32)).astype(np.int64)
    check = (31 - total % 31) % 31
    return _bools(alphabet & (check == v[17]))


def uscc_code(values: pa.Array) -> Mask:
    """GB 32100 mod-31 check (the plan validator ``cn_uscc``)."""
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, _uscc_matrix(matrix))


def uscc(values: pa.Array) -> Mask:
    """A USCC that is not also a valid resident ID (the built-in detector's check)."""
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, _unless_resident_id(matrix, _uscc_matrix(matrix)))


# Per byte: its digit value and its Luhn-doubled value; 99 marks a byte that is no digit.
_DIGIT = np.full(256, 99, dtype=np.uint8)
_DIGIT[_ZERO : _ZERO + 10] = np.arange(10)
_DOUBLED = np.full(256, 99, dtype=np.uint8)
_DOUBLED[_ZERO : _ZERO + 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def luhn_matrix(m: NDArray[np.uint8]) -> tuple[Mask, Mask]:
    """(all digits, Luhn passes) over rows of equal width."""
    width = m.shape[1]
    doubled = (width - 1 - np.arange(width)) % 2 == 1  # every second digit from the right
    t = _columns(m)
    plain, twice = _DIGIT[t[~doubled]], _DOUBLED[t[doubled]]
    digits = _bools((plain.max(axis=0, initial=0) < 10) & (twice.max(axis=0, initial=0) < 10))
    total = plain.sum(axis=0, dtype=np.int32) + twice.sum(axis=0, dtype=np.int32)
    return digits, _bools(digits & (total % 10 == 0))


def _by_length(
    values: pa.Array, lengths: range, check: Callable[[NDArray[np.uint8]], Mask]
) -> Mask:
    out = np.zeros(len(values), dtype=bool)
    present = np.unique(pc.binary_length(values).to_numpy(zero_copy_only=False))
    for width in sorted(set(lengths) & set(present.tolist())):
        matrix, keep = byte_matrix(values, width)
        if keep.any():
            out[keep] = check(matrix)
    return out


def luhn(values: pa.Array) -> Mask:
    """The plan validator ``luhn``: the digits of the value (others dropped) pass Luhn."""
    values = pc.replace_substring_regex(_strings(values), r"[^\p{Nd}]", "")
    widest = int(pc.max(pc.binary_length(values)).as_py() or 0) if len(values) else 0
    return _by_length(values, range(1, widest + 1), lambda m: luhn_matrix(m)[1])


def _card_matrix(m: NDArray[np.uint8]) -> Mask:
    first = m[:, 0]
    issuer = (first >= ord("3")) & (first <= ord("6"))
    if m.shape[1] < 16:
        issuer &= first <= ord("4")
    ok = issuer & luhn_matrix(m)[1]
    return _unless_resident_id(m, ok) if m.shape[1] == 18 else ok


def _unless_resident_id(m: NDArray[np.uint8], ok: Mask) -> Mask:
    """``ok`` without the rows that are valid resident IDs (checked on ``ok``'s rows only)."""
    rows = np.flatnonzero(ok)
    if len(rows):
        ok = ok.copy()
        ok[rows] = ~resident_id_matrix(m[rows])
    return ok


def bank_card(values: pa.Array) -> Mask:
    """13-19 digits (spaces and hyphens dropped), an issuer digit, Luhn; not a resident ID."""
    values = _strings(values)
    if _holds_any(values, b" -"):
        values = pc.replace_substring(pc.replace_substring(values, " ", ""), "-", "")
    return _by_length(values, range(13, 20), _card_matrix)


def _holds_any(values: pa.Array, chars: bytes) -> bool:
    """Some value holds one of the ASCII ``chars`` (a test of the bytes, no regex)."""
    data = values.buffers()[2]
    if data is None:
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    body = np.frombuffer(data, dtype=np.uint8)[
        offsets[values.offset] : offsets[values.offset + len(values)]
    ]
    return any(bool((body == c).any()) for c in chars)


# ---------------------------------------------------------------- shapes
# The anchored ``whole`` patterns of three built-in rules, as numpy tests over the cells'
# bytes: the same answer as the regex (a property test holds them equal), without a pass of
# RE2 over a column where every cell has the shape.

_ID_LAST = np.zeros(256, dtype=bool)
_ID_LAST[[*range(_ZERO, _ZERO + 10), ord("X"), ord("x")]] = True


def resident_id_shape(values: pa.Array) -> Mask:
    """``^[0-9]{17}[0-9Xx]$``"""
    matrix, keep = byte_matrix(values, 18)
    t = _columns(matrix)
    digits = (t[:17] - np.uint8(_ZERO)).max(axis=0, initial=0) < 10
    return _spread(keep, _bools(digits & _ID_LAST[t[17]]))


def uscc_shape(values: pa.Array) -> Mask:
    """``^[USCC]{2}[0-9]{6}[USCC]{10}$`` (USCC: the code's 31 characters)."""
    matrix, keep = byte_matrix(values, 18)
    t = _columns(matrix)
    alphabet = _USCC_VALUE[t].max(axis=0, initial=0) < 31
    digits = (t[2:8] - np.uint8(_ZERO)).max(axis=0, initial=0) < 10
    return _spread(keep, _bools(alphabet & digits))


def digits_shape(values: pa.Array) -> Mask:
    """``^[0-9]{13,19}$``"""

    def all_digits(m: NDArray[np.uint8]) -> Mask:
        return _bools((_columns(m) - np.uint8(_ZERO)).max(axis=0, initial=0) < 10)

    return _by_length(_strings(values), range(13, 20), all_digits)


VALIDATORS: dict[str, Validator] = {
    "cn_resident_id": resident_id,
    "cn_uscc": uscc_code,
    "luhn": luhn,
}
