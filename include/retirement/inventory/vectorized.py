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

_RIC_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.float64)
_RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
_USCC_WEIGHTS = np.array(
    [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.float64
)
_USCC_VALUE = np.full(256, -1, dtype=np.int64)
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


def resident_id_matrix(m: NDArray[np.uint8]) -> Mask:
    """GB 11643 over rows of 18 bytes: digits, province, birth date, MOD 11-2 check."""
    d = _DIGIT[m[:, :17]]
    digits = _bools(d.max(axis=1, initial=0) < 10)
    d = np.where(digits[:, None], d, 0)
    last = m[:, 17]
    last = np.where(last == ord("x"), ord("X"), last)
    f = d.astype(np.float64)  # BLAS does the sums; exact for these small integers
    check = _RIC_CHECK[(f @ _RIC_WEIGHTS).astype(np.int64) % 11]
    province = _PROVINCE[d[:, 0] * 10 + d[:, 1]]

    def num(a: int, b: int) -> NDArray[np.int64]:
        return (f[:, a:b] @ (10.0 ** np.arange(b - a - 1, -1, -1))).astype(np.int64)

    born = _real_date(num(6, 10), num(10, 12), num(12, 14))
    return _bools(digits & province & born & (check == last))


def resident_id(values: pa.Array) -> Mask:
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, resident_id_matrix(matrix))


def _uscc_matrix(matrix: NDArray[np.uint8]) -> Mask:
    v = _USCC_VALUE[matrix]
    alphabet = _bools((v >= 0).all(axis=1))
    v = np.where(alphabet[:, None], v, 0)
    total = (v[:, :17].astype(np.float64) @ _USCC_WEIGHTS).astype(np.int64)
    check = (31 - total % 31) % 31
    return _bools(alphabet & (check == v[:, 17]))


def uscc_code(values: pa.Array) -> Mask:
    """GB 32100 mod-31 check (the plan validator ``cn_uscc``)."""
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, _uscc_matrix(matrix))


def uscc(values: pa.Array) -> Mask:
    """A USCC that is not also a valid resident ID (the built-in detector's check)."""
    matrix, keep = byte_matrix(values, 18)
    return _spread(keep, _uscc_matrix(matrix) & ~resident_id_matrix(matrix))


# Per byte: its digit value and its Luhn-doubled value; 99 marks a byte that is no digit.
_DIGIT = np.full(256, 99, dtype=np.int32)
_DIGIT[_ZERO : _ZERO + 10] = np.arange(10)
_DOUBLED = np.full(256, 99, dtype=np.int32)
_DOUBLED[_ZERO : _ZERO + 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def luhn_matrix(m: NDArray[np.uint8]) -> tuple[Mask, Mask]:
    """(all digits, Luhn passes) over rows of equal width."""
    width = m.shape[1]
    doubled = (width - 1 - np.arange(width)) % 2 == 1  # every second digit from the right
    plain, twice = _DIGIT[m[:, ~doubled]], _DOUBLED[m[:, doubled]]
    digits = _bools((plain.max(axis=1, initial=0) < 10) & (twice.max(axis=1, initial=0) < 10))
    total = plain.sum(axis=1, dtype=np.int32) + twice.sum(axis=1, dtype=np.int32)
    return digits, _bools(digits & (total % 10 == 0))


def _by_length(
    values: pa.Array, lengths: range, check: Callable[[NDArray[np.uint8]], Mask]
) -> Mask:
    out = np.zeros(len(values), dtype=bool)
    for width in lengths:
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
    return ok & ~resident_id_matrix(m) if m.shape[1] == 18 else ok


def bank_card(values: pa.Array) -> Mask:
    """13-19 digits (spaces and hyphens dropped), an issuer digit, Luhn; not a resident ID."""
    values = _strings(values)
    if pc.any(pc.match_substring_regex(values, "[ -]")).as_py():
        values = pc.replace_substring(pc.replace_substring(values, " ", ""), "-", "")
    return _by_length(values, range(13, 20), _card_matrix)


VALIDATORS: dict[str, Validator] = {
    "cn_resident_id": resident_id,
    "cn_uscc": uscc_code,
    "luhn": luhn,
}
