"""A dataset's identity: which source, which table, file or object, which sheet.

One type, parsed and printed in one place, so names cannot be confused whatever characters
a table, file, sheet or object key holds. The printed form (the ledger's and the plan's
``source.name``) is ``<source>.<object>`` and ``#<sheet>`` for a workbook's sheet, where
``%``, ``#``, control characters and bytes that are not UTF-8 (file names on Linux may
hold any byte; Python keeps them as surrogate escapes) are written ``%XX``. A name made of
ordinary characters prints as itself (``crm.customers``, ``exports.exports/a.csv``,
``exports.book.xlsx#Sheet1``), so ledgers written before this type read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HEX = "0123456789ABCDEFabcdef"


def _quote(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"%{code - 0xDC00:02X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"a lone surrogate U+{code:04X} cannot be part of a dataset name")
        elif ch in "%#" or code < 0x20 or code == 0x7F:
            out.append(f"%{code:02X}")
        else:
            out.append(ch)
    return "".join(out)


def _unquote(text: str, whole: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            raise ValueError(f"not a dataset name: {whole!r} ('#' twice)")
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or any(c not in _HEX for c in pair):
            raise ValueError(
                f"not a dataset name: {whole!r} ('%' must be followed by 2 hex digits)"
            )
        byte = int(pair, 16)
        out.append(chr(byte) if byte < 0x80 else chr(0xDC00 + byte))
        i += 3
    return "".join(out)


@dataclass(frozen=True, order=True)
class DatasetId:
    """``source``: the plan's source name; ``object``: a table's name, or a path relative to
    the folder or bucket prefix (any characters); ``sheet``: a workbook's sheet, or None."""

    source: str
    object: str
    sheet: str | None = None

    def __post_init__(self) -> None:
        if not _SOURCE.match(self.source):
            raise ValueError(f"not a source name: {self.source!r}")
        if not self.object:
            raise ValueError("a dataset needs a table, file or object name")
        _quote(self.object)  # refuses what cannot be printed
        if self.sheet is not None:
            _quote(self.sheet)

    @property
    def local(self) -> str:
        """The printed name without the source: what the source itself lists."""
        return _quote(self.object) + ("" if self.sheet is None else "#" + _quote(self.sheet))

    def __str__(self) -> str:
        return f"{self.source}.{self.local}"

    @classmethod
    def parse(cls, text: str) -> DatasetId:
        source, dot, rest = text.partition(".")
        if not dot or not rest:
            raise ValueError(f"not a dataset name: {text!r} (expected <source>.<name>)")
        return cls.of(source, rest, whole=text)

    @classmethod
    def of(cls, source: str, local: str, *, whole: str | None = None) -> DatasetId:
        """The dataset ``local`` (a source's printed name) of ``source``."""
        whole = whole or f"{source}.{local}"
        obj, hashed, sheet = local.partition("#")
        return cls(source, _unquote(obj, whole), _unquote(sheet, whole) if hashed else None)

    @property
    def file_name(self) -> str:
        """The last part of the object's path, for messages and restored files."""
        return self.object.rsplit("/", 1)[-1]


def shown(text: object, limit: int = 200) -> str:
    """Any name as one printable line for a person: control characters and Markdown's table
    and emphasis characters escaped, long names cut."""
    value = str(text)
    out = []
    for ch in value[:limit]:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code & 0xFF:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif ch in "|\\`*_[]<>":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(value) > limit else "")
