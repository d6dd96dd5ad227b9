"""How the column engine runs each detector: a cheap RE2 prefilter, a whole-cell shape, a check.

A :class:`Rule` wraps the per-value :class:`~retirement.inventory.detect.Detector` (the
reference) with three things the engine can run over a whole Arrow column:

- ``loose``: an RE2 pattern that matches every cell where the reference could find an
  identifier (a superset: lookarounds dropped, Unicode digits where the reference takes them).
  Cells it does not match are decided without Python.
- ``whole``: an anchored RE2 shape of a cell (spaces and tabs trimmed) that is exactly one
  identifier; those cells are decided by ``validate`` over the whole batch in numpy (or are
  hits outright when the detector has no check).
- ``validate``: the check digits of :mod:`retirement.inventory.vectorized`.

The remaining candidates (identifiers inside longer text) go through the reference regex,
and every match they yield is checked in one vectorized call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from retirement.inventory import vectorized as vec
from retirement.inventory.detect import BUILTIN
from retirement.inventory.tokens import ALNUM, DIGITS, Run

if TYPE_CHECKING:
    from collections.abc import Mapping

    from retirement.inventory.detect import Detector
    from retirement.inventory.vectorized import Validator

_D = r"\p{Nd}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_USCC_CHAR = "[0-9A-HJ-NPQRTUWXY]"
_AREA = r"(?:10|2[0-9]|[3-9][0-9]{2})"
# The reference's lookarounds, as characters consumed (RE2 has no lookaround): the same cells.
_NOT_ALNUM_BEFORE = "(?:^|[^0-9A-Za-z])"
_NOT_ALNUM_AFTER = "(?:$|[^0-9A-Za-z])"
# The same edges captured (groups 1 and 3 of an ``extract`` pattern, around ``id``).
_LEAD = "(?P<lead>^|[^0-9A-Za-z])"
_TRAIL = "(?P<trail>$|[^0-9A-Za-z])"
# A resident ID or USCC: a whole run of 18 ASCII letters and digits (tokens.py).
_ALNUM_18 = Run(ALNUM, ALNUM, 18, 18)
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"


@dataclass(frozen=True)
class Rule:
    """One detector as the column engine runs it (see the module docstring)."""

    name: str
    reference: Detector
    loose: str | None  # None: every non-empty cell is a candidate
    whole: str | None = None
    validate: Validator | None = None
    kind: str = "regex"  # "regex", "person_name" or "address"
    # The reference's prefilter as a count of ASCII digits (0: ``loose`` implies it);
    # None: call the reference's prefilter per candidate.
    min_digits: int | None = None
    # No match can hold a line break and the lookarounds take one as the text's edge: the
    # candidates can be searched joined by line breaks, in one pass.
    joinable: bool = False
    # The reference's regex in RE2 for text whose only digits are 0-9: the edges the
    # lookarounds test as groups 1 and 3 (characters consumed, which moves no match start),
    # the identifier as group 2 ``id``; the same first match in every cell. Replacing that
    # match by its edges around one digit ("0", which no identifier can hold alone and which
    # blocks a neighbour as the identifier's own first and last characters did) leaves the
    # cell's next match first. See ``engine._first_matches``.
    extract: str | None = None
    # The byte lengths a cell matching ``whole`` can have (spaces and tabs trimmed): the
    # shape is tried on those cells only. None: any length.
    whole_bytes: tuple[int, int] | None = None
    # ``whole`` as a numpy test of the trimmed cells (vectorized.py), where one exists.
    shape: Validator | None = None
    # What every match's identifier holds at least: ASCII digits and bytes. A cell with
    # fewer than k times either cannot hold k identifiers (matches do not overlap).
    match_digits: int = 0
    match_bytes: int = 1
    # ``extract``'s identifiers are the runs this describes that ``shape`` takes, in every
    # cell without a joiner between two members: found in numpy instead (tokens.py).
    run: Run | None = None


BUILTIN_RULES: dict[str, Rule] = {
    "cn_resident_id": Rule(
        "cn_resident_id",
        BUILTIN["cn_resident_id"],
        f"{_NOT_ALNUM_BEFORE}[0-9]{{17}}[0-9Xx]{_NOT_ALNUM_AFTER}",
        "^[0-9]{17}[0-9Xx]$",
        vec.resident_id,
        min_digits=0,
        joinable=True,
        extract=f"{_LEAD}(?P<id>[0-9]{{17}}[0-9Xx]){_TRAIL}",
        whole_bytes=(18, 18),
        shape=vec.resident_id_shape,
        match_digits=17,
        match_bytes=18,
        run=_ALNUM_18,
    ),
    "cn_uscc": Rule(
        "cn_uscc",
        BUILTIN["cn_uscc"],
        f"{_NOT_ALNUM_BEFORE}{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}{_NOT_ALNUM_AFTER}",
        f"^{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}$",
        vec.uscc,
        min_digits=0,
        joinable=True,
        extract=f"{_LEAD}(?P<id>{_USCC_CHAR}{{2}}[0-9]{{6}}{_USCC_CHAR}{{10}}){_TRAIL}",
        whole_bytes=(18, 18),
        shape=vec.uscc_shape,
        match_digits=6,
        match_bytes=18,
        run=_ALNUM_18,
    ),
    "bank_card": Rule(
        "bank_card",
        BUILTIN["bank_card"],
        rf"(?:^|[^{_D}-])[0-9]{{4}}[ -]?[0-9]{{4}}[ -]?[0-9]{{4}}[ -]?[0-9]",
        "^[0-9]{13,19}$",
        vec.bank_card,
        min_digits=0,
        joinable=True,
        extract="(?P<lead>^|[^0-9-])(?P<id>[0-9]{4}(?:[ -]?[0-9]{4}){2,3}(?:[ -]?[0-9]{1,3})?"
        "|[0-9]{13,19})(?P<trail>$|[^0-9-])",
        whole_bytes=(13, 19),
        shape=vec.digits_shape,
        match_digits=12,
        match_bytes=12,
        run=Run(DIGITS, DIGITS + b"-", 12, 19, joiner=b" -"),
    ),
    "cn_mobile": Rule(
        "cn_mobile",
        BUILTIN["cn_mobile"],
        rf"(?:^|[^{_D}+])(?:(?:\+|00)?86[ -]?)?1[3-9]{_D}[ -]?{_D}{{4}}[ -]?{_D}{{4}}(?:$|[^{_D}])",
        r"^(?:(?:\+|00)?86[ -]?)?1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}$",
        min_digits=11,
        joinable=True,
        whole_bytes=(11, 18),
    ),
    "cn_landline": Rule(
        "cn_landline",
        BUILTIN["cn_landline"],
        rf"(?:^|[^{_D}+])(?:(?:\+|00)86[ -]?(?:10|2{_D}|[3-9]{_D}{{2}})"
        rf"|\(?0(?:10|2{_D}|[3-9]{_D}{{2}})\)?)"
        rf"[ -]?[2-9]{_D}{{2,3}}[ -]?{_D}{{4}}(?:$|[^{_D}])",
        rf"^(?:(?:\+|00)86[ -]?{_AREA}|\(?0{_AREA}\)?)[ -]?[2-9][0-9]{{2,3}}[ -]?[0-9]{{4}}$",
        min_digits=9,
        joinable=True,
        whole_bytes=(10, 18),
    ),
    "email": Rule("email", BUILTIN["email"], _EMAIL, f"^{_EMAIL}$", min_digits=0, joinable=True),
    "passport": Rule(
        "passport",
        BUILTIN["passport"],
        f"{_NOT_ALNUM_BEFORE}(?:[EG]{_D}{{8}}|E[A-HJ-NP-Z]{_D}{{7}}|[PSD]{_D}{{7}})"
        f"{_NOT_ALNUM_AFTER}",
        "^(?:[EG][0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|[PSD][0-9]{7})$",
        min_digits=7,
        joinable=True,
        whole_bytes=(8, 9),
    ),
    "person_name": Rule("person_name", BUILTIN["person_name"], None, kind="person_name"),
    "address": Rule("address", BUILTIN["address"], None, kind="address"),
    "ip_address": Rule(
        "ip_address",
        BUILTIN["ip_address"],
        r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|:[0-9A-Fa-f]{0,4}:",
        rf"^(?:{_OCTET}\.){{3}}{_OCTET}$",
        min_digits=0,
        joinable=True,
        whole_bytes=(7, 15),
    ),
}

# Python's classes where they are wider than RE2's (Unicode digits, words and spaces).
_WIDER = {
    r"\d": r"\p{Nd}",
    r"\D": r"\P{Nd}",
    r"\w": r"[\p{L}\p{N}\p{M}_]",
    r"\W": r"[^\p{L}\p{N}_]",
    r"\s": r"[\s\p{Z}\x0b\x1c-\x1f\x{85}]",
    r"\b": "",
    r"\B": "",
}


def _re2_superset(pattern: str) -> str | None:
    """The plan's pattern as an RE2 prefilter, or None when RE2 cannot run it as is."""
    out, i = [], 0
    while i < len(pattern):
        two = pattern[i : i + 2]
        if two in _WIDER:
            out.append(_WIDER[two])
            i += 2
        elif pattern[i] == "\\":
            out.append(two)
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    loose = "".join(out)
    try:
        pc.match_substring_regex(pa.array([""]), loose)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return loose


def rules_for(detectors: Mapping[str, Detector]) -> dict[str, Rule]:
    """The rule of each detector: built-in ones as above, any other as a plan's detector."""
    out: dict[str, Rule] = {}
    for name, det in detectors.items():
        rule = BUILTIN_RULES.get(name)
        if rule is not None and rule.reference is det:
            out[name] = rule
            continue
        out[name] = Rule(
            name,
            det,
            _re2_superset(det._pattern.pattern),  # noqa: SLF001 (the reference's own regex)
            None,
            _validator_of(det),
        )
    return out


def _validator_of(det: Detector) -> Validator | None:
    from retirement.inventory.detect import VALIDATORS

    check = det._check  # noqa: SLF001
    if check is None:
        return None
    for key, fn in VALIDATORS.items():
        if fn is check:
            return vec.VALIDATORS[key]
    return _per_value(check)


def _per_value(check: object) -> Validator:
    import numpy as np

    def run(values: pa.Array) -> vec.Mask:
        found = [bool(check(v)) for v in values.to_pylist()]  # type: ignore[operator]
        return np.array(found, dtype=np.bool_)

    return run
