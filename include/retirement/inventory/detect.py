"""Personal-data detectors: identifiers found by their values, checksummed where they have one.

This per-value code is the reference: scans run the column engine
(:mod:`retirement.inventory.engine`), and property tests hold the engine's answer per cell
equal to :meth:`Detector.hit`.

Every detector answers ``find(text)``: the identifiers of its type inside ``text`` (free text
included). A cell is a *hit* for a detector when at least one is found. Each detector has a
cheap prefilter so a column of ordinary values costs a few string tests per cell.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retirement.inventory import dictionaries as data
from retirement.model.identifiers import is_valid_resident_id, is_valid_uscc, luhn_ok

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

_HAN = r"\u4e00-\u9fff"


@dataclass(frozen=True)
class Detector:
    """One identifier type: a prefilter, a regex and an optional validator per match."""

    name: str
    validated: bool
    _pattern: re.Pattern[str] = field(repr=False)
    _check: Callable[[str], bool] | None = field(default=None, repr=False)
    _prefilter: Callable[[str], bool] | None = field(default=None, repr=False)
    _group: int = 0

    def find(self, text: str) -> list[str]:
        """Every identifier of this type in ``text``."""
        if self._prefilter is not None and not self._prefilter(text):
            return []
        out = []
        for m in self._pattern.finditer(text):
            value = m.group(self._group)
            if self._check is None or self._check(value):
                out.append(value)
        return out

    def hit(self, text: str) -> bool:
        """True when ``text`` holds at least one identifier of this type (stops at the first)."""
        if self._prefilter is not None and not self._prefilter(text):
            return False
        if self._check is None:
            return self._pattern.search(text) is not None
        return any(self._check(m.group(self._group)) for m in self._pattern.finditer(text))

    def matches(self, value: str) -> bool:
        """True when the whole stripped ``value`` is one identifier of this type."""
        value = value.strip()
        return self.find(value) == [value] if value else False

    def scan_lines(self, blob: str) -> set[int]:
        """The lines of ``blob`` (one cell per line) holding an identifier, by start offset.

        One regex pass over a whole batch runs in C; only candidate matches reach Python.
        """
        found: set[int] = set()
        check, group, rfind = self._check, self._group, blob.rfind
        for m in self._pattern.finditer(blob):
            line = rfind("\n", 0, m.start())
            if line not in found and (check is None or check(m.group(group))):
                found.add(line)
        return found


# ---------------------------------------------------------------------- validators


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _bank_card(s: str) -> bool:
    d = s.replace(" ", "").replace("-", "")
    if not 13 <= len(d) <= 19 or d[0] not in "3456" or (len(d) < 16 and d[0] not in "34"):
        return False
    return luhn_ok(d) and not (len(d) == 18 and is_valid_resident_id(d))


def _uscc(s: str) -> bool:
    return is_valid_uscc(s) and not is_valid_resident_id(s)


def _ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _long_enough(n: int) -> Callable[[str], bool]:
    return lambda s: len(s) >= n


def _has_digits(n: int) -> Callable[[str], bool]:
    def test(s: str) -> bool:
        count = 0
        for c in s:
            if "0" <= c <= "9":
                count += 1
                if count >= n:
                    return True
        return False

    return test


def _is_name(s: str) -> bool:
    low = s.lower()
    if any(w in low for w in data.COMPANY_WORDS):
        return False
    han = s
    for suffix in data.NAME_SUFFIXES:
        han = han.removesuffix(suffix)
    if han and all("\u4e00" <= c <= "\u9fff" for c in han):
        if 2 <= len(han) <= 4 and han[:2] in data.COMPOUND_SURNAMES:
            return True
        return 2 <= len(han) <= 3 and han[0] in data.SURNAMES
    words = s.split()
    if 2 <= len(words) <= 3 and all(
        w[:1].isupper() and w[1:].islower() and w.isalpha() for w in words
    ):
        return any(w.lower() in data.PINYIN_SURNAMES for w in words)
    return False


def _name_prefilter(s: str) -> bool:
    return len(s) <= 40


class _NameDetector(Detector):
    """A person name: the whole short cell, or after a marker like 姓名：."""

    def find(self, text: str) -> list[str]:
        s = text.strip()
        if not s:
            return []
        if len(s) <= 40 and _is_name(s):
            return [s]
        return [m.group(1) for m in _NAME_AFTER_MARKER.finditer(text) if _is_name(m.group(1))]

    def hit(self, text: str) -> bool:
        return bool(self.find(text))

    def scan_lines(self, blob: str) -> set[int]:
        found: set[int] = set()
        for pattern, group in ((_NAME_CELL_ZH, 0), (_NAME_CELL_EN, 0), (_NAME_AFTER_MARKER, 1)):
            for m in pattern.finditer(blob):
                line = blob.rfind("\n", 0, m.start())
                if line not in found and _is_name(m.group(group).strip()):
                    found.add(line)
        return found


_NAME_CELL_ZH = re.compile(r"(?m)^[ \t]*[" + _HAN + r"]{2,4}(?:先生|女士|小姐)?[ \t]*$")
_NAME_CELL_EN = re.compile(r"(?m)^[ \t]*[A-Z][a-z]+(?: [A-Z][a-z]+){1,2}[ \t]*$")
_NAME_AFTER_MARKER = re.compile(
    r"(?:" + "|".join(data.NAME_MARKERS) + r")\s*[:：]\s*([" + _HAN + r"]{2,4})"
)
_ADDRESS_ZH = re.compile(
    r"(?:[省市区县州]|北京|上海|天津|重庆|香港|澳门)["
    + _HAN
    + r"0-9]{0,30}?(?:"
    + "|".join(data.STREET_MARKERS)
    + r")"
)
_ADDRESS_EN = re.compile(
    r"\b\d{1,5}[ \t]+(?:[A-Z][A-Za-z]+[ \t]+){1,4}(?:"
    + "|".join(w.capitalize() for w in data.EN_STREET_WORDS)
    + r")\b\.?"
)


def _address_prefilter(s: str) -> bool:
    return len(s) >= 6


class _AddressDetector(Detector):
    def find(self, text: str) -> list[str]:
        if len(text) < 6:
            return []
        found = [m.group(0) for m in _ADDRESS_ZH.finditer(text) if len(text) >= 6]
        if text.isascii():
            found += [m.group(0) for m in _ADDRESS_EN.finditer(text)]
        return found

    def hit(self, text: str) -> bool:
        return bool(self.find(text))

    def scan_lines(self, blob: str) -> set[int]:
        found: set[int] = set()
        for pattern, english in ((_ADDRESS_ZH, False), (_ADDRESS_EN, True)):
            for m in pattern.finditer(blob):
                line = blob.rfind("\n", 0, m.start())
                if line in found:
                    continue
                end = blob.find("\n", m.end())
                cell = blob[line + 1 : end if end >= 0 else len(blob)]
                if cell.isascii() if english else len(cell) >= 6:
                    found.add(line)
        return found


BUILTIN: dict[str, Detector] = {
    "cn_resident_id": Detector(
        "cn_resident_id",
        True,
        re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])"),
        is_valid_resident_id,
        _has_digits(17),
        1,
    ),
    "cn_uscc": Detector(
        "cn_uscc",
        True,
        re.compile(
            r"(?<![0-9A-Za-z])([0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10})"
            r"(?![0-9A-Za-z])"
        ),
        _uscc,
        _long_enough(18),
        1,
    ),
    "bank_card": Detector(
        "bank_card",
        True,
        re.compile(r"(?<![\d-])(\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?|\d{13,19})(?![\d-])"),
        _bank_card,
        _has_digits(13),
        1,
    ),
    "cn_mobile": Detector(
        "cn_mobile",
        False,
        re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?(1[3-9]\d[ -]?\d{4}[ -]?\d{4})(?!\d)"),
        None,
        _has_digits(11),
        1,
    ),
    "cn_landline": Detector(
        "cn_landline",
        False,
        re.compile(
            r"(?<![\d+])(?:(?:\+|00)86[ -]?(?:10|2\d|[3-9]\d{2})|\(?0(?:10|2\d|[3-9]\d{2})\)?)"
            r"[ -]?[2-9]\d{2,3}[ -]?\d{4}(?!\d)"
        ),
        None,
        _has_digits(9),
    ),
    "email": Detector(
        "email",
        False,
        re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"),
        None,
        lambda s: "@" in s,
    ),
    "passport": Detector(
        "passport",
        False,
        re.compile(r"(?<![A-Za-z0-9])(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7}|[PSD]\d{7})(?![A-Za-z0-9])"),
        None,
        _has_digits(7),
    ),
    "person_name": _NameDetector("person_name", False, re.compile(""), None, _name_prefilter),
    "address": _AddressDetector("address", False, re.compile(""), None, _address_prefilter),
    "ip_address": Detector(
        "ip_address",
        False,
        re.compile(
            r"(?<![\w.:])((?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})"
            r"(?![\w.:])"
        ),
        _ip,
        lambda s: "." in s or ":" in s,
        1,
    ),
}

VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": lambda s: luhn_ok(_digits(s)),
    "cn_resident_id": is_valid_resident_id,
    "cn_uscc": is_valid_uscc,
}


def custom_detector(name: str, pattern: str, validator: str | None = None) -> Detector:
    """A detector a plan adds: a regex, optionally checked by a named validator."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"detector {name}: invalid regular expression {pattern!r}: {exc}") from exc
    check = None
    if validator is not None:
        if validator not in VALIDATORS:
            raise ValueError(
                f"detector {name}: unknown validator {validator!r}; expected one of "
                f"{', '.join(sorted(VALIDATORS))}"
            )
        check = VALIDATORS[validator]
    return Detector(name, check is not None, compiled, check)


# ---------------------------------------------------------------------- column scanning


@dataclass(frozen=True)
class ColumnScan:
    """Hits of each detector over a column's non-empty cells."""

    non_empty: int
    hits: dict[str, int]
    whole: dict[str, int] = field(default_factory=dict)  # hits where the cell is the identifier

    def ratio(self, name: str) -> float:
        return self.hits.get(name, 0) / self.non_empty if self.non_empty else 0.0

    def whole_ratio(self, name: str) -> float:
        return self.whole.get(name, 0) / self.non_empty if self.non_empty else 0.0

    def embedded(self, name: str) -> int:
        """Cells where an identifier of ``name`` sits inside longer text."""
        return self.hits.get(name, 0) - self.whole.get(name, 0)


class ColumnScanner:
    """Streaming accumulator: feed batches of a column's values; memory stays flat.

    Each batch is joined into one text, one cell per line, and every detector makes one
    regex pass over it: the per-cell work happens in the regex engine, not in Python.
    """

    def __init__(self, detectors: Mapping[str, Detector] = BUILTIN) -> None:
        self._detectors = dict(detectors)
        self._non_empty = 0
        self._hits = dict.fromkeys(detectors, 0)

    def feed(self, values: Iterable[object]) -> None:
        cells = [t for t in map(_text, values) if t]
        if not cells:
            return
        self._non_empty += len(cells)
        blob = "\n".join(cells)
        for name, det in self._detectors.items():
            self._hits[name] += len(det.scan_lines(blob))

    def result(self) -> ColumnScan:
        return ColumnScan(self._non_empty, {k: v for k, v in self._hits.items() if v})


_LINE_BREAKS = str.maketrans(
    {
        "\n": " ",
        "\r": " ",
        "\x0b": " ",
        "\x0c": " ",
        "\x1c": " ",
        "\x1d": " ",
        "\x1e": " ",
        "\x85": " ",
        "\u2028": " ",
        "\u2029": " ",
    }
)


def _text(value: object) -> str:
    """A cell as one line of text ('' when empty): line breaks inside become spaces."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = str(value)
    if text.isspace() or not text:
        return ""
    return text.translate(_LINE_BREAKS) if not text.isprintable() else text
