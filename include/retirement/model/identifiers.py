"""Check-digit algorithms for the identifiers this project validates.

Plain functions over strings, no regex scanning here (that is
``retirement.inventory.detect``). Each is checked against python-stdnum in the tests.
"""

from __future__ import annotations

from operator import mul

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015, mod 31)."""
    if len(first17) != 17:
        raise ValueError(f"a USCC body has 17 characters, not {len(first17)}")
    total = sum(map(mul, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    """True when ``code`` is 18 characters of the USCC alphabet with a correct check char."""
    if len(code) != 18:
        return False
    try:
        values = list(map(_USCC_VALUE.__getitem__, code))
    except KeyError:  # a character outside the alphabet
        return False
    check: int = (31 - sum(map(mul, values, _USCC_WEIGHTS)) % 31) % 31
    return bool(values[17] == check)


_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"
PROVINCES = frozenset(
    {
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    }
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


_RIC_ZERO = 48 * sum(_RIC_WEIGHTS)  # ord("0") times the weights: subtracted once


def ric_check_char(first17: str) -> str:
    """The 18th character of a resident ID number (GB 11643, ISO 7064 MOD 11-2)."""
    raw = first17.encode("ascii")
    if len(raw) != 17 or not raw.isdigit():
        raise ValueError(f"a resident ID body is 17 digits, not {first17!r}")
    return _RIC_CHECK[(sum(map(mul, raw, _RIC_WEIGHTS)) - _RIC_ZERO) % 11]


def _real_date(yyyymmdd: str) -> bool:
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and day >= 1):
        return False
    if month == 2 and day == 29:
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= _DAYS[month - 1]


def is_valid_resident_id(code: str) -> bool:
    """18 characters, a known province, a real birth date and a correct MOD 11-2 check."""
    if len(code) != 18 or not code[:17].isdigit() or not code[:17].isascii():
        return False
    last = code[17].upper()
    if not (last.isdigit() or last == "X"):
        return False
    return code[:2] in PROVINCES and _real_date(code[6:14]) and ric_check_char(code[:17]) == last


_LUHN_DOUBLE = {48 + d: (d * 2 - 9 if d > 4 else d * 2) for d in range(10)}


def luhn_ok(digits: str) -> bool:
    """True when the (ASCII) digit string passes the Luhn check."""
    raw = digits.encode("ascii", errors="replace")
    if not raw.isdigit():
        return False
    kept = raw[-1::-2]
    total = sum(kept) - 48 * len(kept) + sum(map(_LUHN_DOUBLE.__getitem__, raw[-2::-2]))
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass Luhn."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise ValueError(f"not a digit string: {body!r}")  # unreachable for digit input
