"""Check-digit algorithms: property tests, and agreement with python-stdnum."""

from __future__ import annotations

import string
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from stdnum import luhn as std_luhn
from stdnum.cn import ric as std_ric
from stdnum.cn import uscc as std_uscc

from retirement.model.identifiers import (
    USCC_ALPHABET,
    is_valid_resident_id,
    is_valid_uscc,
    luhn_check_digit,
    luhn_ok,
    ric_check_char,
    uscc_check_char,
)

digits = st.text(string.digits, min_size=1, max_size=1)
uscc_bodies = st.text(USCC_ALPHABET, min_size=17, max_size=17)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
regions = st.sampled_from(["110101", "310115", "440305", "510104", "650102", "820000"])


@st.composite
def ric_bodies(draw: st.DrawFn) -> str:
    return f"{draw(regions)}{draw(dates):%Y%m%d}{draw(st.integers(0, 999)):03d}"


@given(ric_bodies())
def test_ric_check_char_makes_a_valid_id(body: str) -> None:
    assert is_valid_resident_id(body + ric_check_char(body))


@given(ric_bodies(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_ric_any_single_change_is_caught(body: str, pos: int, char: str) -> None:
    good = body + ric_check_char(body)
    assume(good[pos] != char and (pos == 17 or char != "X"))
    bad = good[:pos] + char + good[pos + 1 :]
    # MOD 11-2 catches every single substitution (the date or region may also break).
    assert not is_valid_resident_id(bad)


@given(ric_bodies())
def test_ric_agrees_with_stdnum(body: str) -> None:
    # The check character is the same computation. stdnum's is_valid is stricter about the
    # region (a county must have existed in the birth year); ours checks the province only,
    # since a detector must not miss IDs from counties renamed since (both agree on the rest).
    assert ric_check_char(body) == std_ric.calc_check_digit(body + "0")
    good = body + ric_check_char(body)
    if std_ric.is_valid(good):
        assert is_valid_resident_id(good)
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    assert not std_ric.is_valid(wrong)
    assert not is_valid_resident_id(wrong)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("11010519900230001", id="feb-30"),
        pytest.param("99010519900101001", id="no-province"),
        pytest.param("11010518991231001", id="before-1900"),
        pytest.param("1101051990010100", id="short"),
    ],
)
def test_ric_rejects_impossible_bodies(code: str) -> None:
    if len(code) == 17:
        code += ric_check_char(code)
    assert not is_valid_resident_id(code)


def test_ric_leap_day() -> None:
    assert is_valid_resident_id("11010520000229001" + ric_check_char("11010520000229001"))
    assert not is_valid_resident_id("11010519000229001" + ric_check_char("11010519000229001"))


@given(uscc_bodies)
def test_uscc_check_char_makes_a_valid_code(body: str) -> None:
    assert is_valid_uscc(body + uscc_check_char(body))


@given(uscc_bodies, st.integers(0, 17), st.sampled_from(USCC_ALPHABET))
def test_uscc_any_single_change_is_caught(body: str, pos: int, char: str) -> None:
    good = body + uscc_check_char(body)
    assume(good[pos] != char)
    assert not is_valid_uscc(good[:pos] + char + good[pos + 1 :])


@settings(max_examples=300)
@given(uscc_bodies)
def test_uscc_agrees_with_stdnum(body: str) -> None:
    good = body + uscc_check_char(body)
    # stdnum also requires a digit-only region code in positions 3-8 and valid first chars.
    if std_uscc.is_valid(good):
        assert is_valid_uscc(good)
    if body[2:8].isdigit() and body[0] in "123456789ANY" and std_uscc.is_valid(good[:17] + "0"):
        assert is_valid_uscc(good[:17] + "0")


@given(st.text(string.digits, min_size=12, max_size=18))
def test_luhn_check_digit_and_agreement(body: str) -> None:
    card = body + luhn_check_digit(body)
    assert luhn_ok(card)
    assert std_luhn.is_valid(card)
    for pos in range(len(card)):
        for d in "0123456789":
            if d != card[pos]:
                changed = card[:pos] + d + card[pos + 1 :]
                assert not luhn_ok(changed)
                break


@given(st.text(string.digits, min_size=2, max_size=19))
def test_luhn_matches_stdnum(number: str) -> None:
    assert luhn_ok(number) == std_luhn.is_valid(number)
