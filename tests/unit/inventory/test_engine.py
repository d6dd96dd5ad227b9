"""The column engine answers what the per-value reference answers, cell by cell.

Random columns mix random text, valid identifiers, near misses (a wrong check digit, one
digit too many) and identifiers embedded in Chinese and English sentences. For every
detector, built-in and plan-defined, the engine's hit per cell equals ``Detector.hit``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retirement.inventory import vectorized as vec
from retirement.inventory.cells import (
    Batch,
    ascii_digit_form,
    digits_are_ascii,
    joined,
    non_empty,
    to_strings,
)
from retirement.inventory.detect import BUILTIN, custom_detector
from retirement.inventory.detect import _bank_card as ref_bank_card
from retirement.inventory.detect import _uscc as ref_uscc
from retirement.inventory.engine import EngineScanner, batch_may_match, batch_rules, column_hits
from retirement.inventory.rules import rules_for
from retirement.model.identifiers import (
    USCC_ALPHABET,
    is_valid_resident_id,
    is_valid_uscc,
    luhn_check_digit,
    luhn_ok,
    ric_check_char,
    uscc_check_char,
)

# Characters that exercise every detector's edges: ASCII and non-ASCII digits, letters,
# separators, Han characters of names, addresses and markers, whitespace of several kinds.
ALPHABET = (
    "0123456789" * 4
    + "XxEGPSDABCFHJKLMNQRTUWYabcdefghijklmnopqrstuvwyz"
    + " -+.@:()_%\t/，：:"
    + "１２３４５６７８９０٣٤"
    + "\u3000\xa0\n"
    + "王李张欧阳司马先生女士小姐公司店姓名客户身份证号已核实北京市朝阳区建国路号省县村"
)
text = st.text(alphabet=ALPHABET, max_size=40)
digits = st.text(alphabet="0123456789", min_size=1, max_size=20)


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(["11", "31", "44", "65", "99", "00"]))
    area = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    year = draw(st.integers(1890, 2110))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    seq = draw(st.text(alphabet="0123456789", min_size=3, max_size=3))
    body = f"{province}{area}{year:04d}{month:02d}{day:02d}{seq}"[:17]
    good = ric_check_char(body)
    last = draw(st.sampled_from([good, good.lower(), "0", "X", "5"]))
    return body + last


@st.composite
def usccs(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
    return body + draw(st.sampled_from([uscc_check_char(body), "0", "Y"]))


@st.composite
def cards(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from("3456")) + draw(
        st.text(alphabet="0123456789", min_size=11, max_size=18)
    )
    card = body + draw(st.sampled_from([luhn_check_digit(body), "0"]))
    if draw(st.booleans()):
        sep = draw(st.sampled_from([" ", "-"]))
        card = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    return card


@st.composite
def formatted(draw: st.DrawFn) -> str:
    return draw(
        st.sampled_from(
            [
                "1"
                + draw(st.sampled_from("23456789"))
                + draw(st.text("0123456789", min_size=9, max_size=10)),
                "+86 13" + draw(st.text("0123456789", min_size=9, max_size=9)),
                "0"
                + draw(st.sampled_from(["10", "21", "755"]))
                + "-"
                + draw(st.text("0123456789", min_size=7, max_size=8)),
                draw(st.text("abcXYZ._+0", min_size=1, max_size=8))
                + "@"
                + draw(st.sampled_from(["b.com", "mail.example.cn", "x.c0m"])),
                draw(st.sampled_from("EGPSD"))
                + draw(st.text("0123456789", min_size=7, max_size=8)),
                ".".join(str(draw(st.integers(0, 300))) for _ in range(4)),
                draw(st.sampled_from(["::1", "fe80::1:2", "1::2::3"])),
                draw(st.sampled_from(["王", "李", "欧阳", "钱", "口"]))
                + draw(st.text("小明华丽先生", min_size=1, max_size=3)),
                draw(
                    st.sampled_from(
                        ["Wang Fang", "Li Lei Smith", "John Smith", "Vince Lin", "Zhang Ltd"]
                    )
                ),
                draw(
                    st.sampled_from(
                        [
                            "北京市朝阳区建国路88号",
                            "上海市浦东新区世纪大道100号",
                            "12 Main Street",
                            "5 Wang Fang Road",
                        ]
                    )
                ),
            ]
        )
    )


identifier = st.one_of(resident_ids(), usccs(), cards(), formatted(), digits)


@st.composite
def cells(draw: st.DrawFn) -> str | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind <= 3:
        return draw(text)
    ident = draw(identifier)
    if kind <= 6:
        return ident
    return draw(text) + ident + draw(text)  # embedded in longer text


def _reference(name: str, values: list[str | None]) -> list[bool]:
    return [v is not None and bool(v.strip()) and BUILTIN[name].hit(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(st.lists(cells(), max_size=30))
@example(["客户身份证号110105194912310021已核实", "手机13800138000 邮箱 a@b.com", "  ", None])
@example(["１３８００１３８０００", "13８００１３８０００", "Vince Lin", "王先生", "欧阳小明"])
def test_engine_equals_reference_on_every_builtin_detector(values: list[str | None]) -> None:
    column = to_strings(values)
    filled, hits = column_hits(rules_for(BUILTIN), column)
    mask = non_empty(column)
    assert filled == int(mask.sum())
    for name in BUILTIN:
        got = [bool(h) and bool(m) for h, m in zip(hits[name].hit, mask, strict=True)]
        assert got == _reference(name, values), name
        assert not (hits[name].whole & ~hits[name].hit).any(), name


@settings(max_examples=200, deadline=None)
@given(st.lists(cells(), max_size=30), st.integers(0, 5), st.sampled_from(["", "x", "１"]))
@example(["客户13800138000来电"], 3, "")
@example(["E1234567８", "010-8888888８"], 1, "x")  # a full-width digit: the Unicode form
def test_the_batch_wide_shortcuts_miss_nothing_in_a_slice(
    values: list[str | None], pad: int, filler: str
) -> None:
    """The engine reads a batch's buffers directly (joined text, first bytes, ASCII digits):
    a slice of a larger array, ASCII-only or not, gives the reference's answer."""
    column = to_strings([filler] * pad + values + [filler]).slice(pad, len(values))
    _, hits = column_hits(rules_for(BUILTIN), column)
    mask = non_empty(column)
    assert mask.tolist() == [v is not None and bool(v.strip()) for v in values]
    for name in BUILTIN:
        assert [bool(h and m) for h, m in zip(hits[name].hit, mask, strict=True)] == _reference(
            name, values
        ), name


BLANKS = " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u2028\u202f\u205f\u3000"


@given(
    st.lists(st.one_of(st.none(), st.text(alphabet=BLANKS + "a王\u00e9\u2010\u3001", max_size=4)))
)
def test_non_empty_is_the_blank_regex(values: list[str | None]) -> None:
    column = to_strings(values)
    blank = pc.match_substring_regex(column, r"^[\s\p{Z}\x0b\x1c-\x1f\x{85}]*$")
    want = [v is not None and not b for v, b in zip(values, blank.to_pylist(), strict=True)]
    assert non_empty(column).tolist() == want


@given(st.text(alphabet="0123456789 +-abcXE王\n", max_size=40))
def test_ascii_digit_form_matches_the_same_text(value: str) -> None:
    for rule in rules_for(BUILTIN).values():
        if rule.loose is None:
            continue
        cell = pa.array([value])
        unicode = pc.match_substring_regex(cell, rule.loose)[0].as_py()
        assert pc.match_substring_regex(cell, ascii_digit_form(rule.loose))[0].as_py() == unicode


def test_ascii_digit_form_keeps_classes_whole() -> None:
    assert ascii_digit_form(r"[^\p{Nd}+]\p{Nd}{4}") == "[^0-9+][0-9]{4}"
    assert ascii_digit_form(r"[]\p{Nd}]\P{Nd}") == "[]0-9][^0-9]"
    assert ascii_digit_form(r"[\P{Nd}]") == r"[\P{Nd}]"  # no ASCII form: kept
    assert ascii_digit_form(r"\\p{Nd}") == r"\\p{Nd}"  # an escaped backslash, not a class


def test_digits_are_ascii_sees_full_width_and_arabic_digits() -> None:
    assert digits_are_ascii(joined(pa.array(["王 138", "abc"])))
    assert not digits_are_ascii(joined(pa.array(["王 138", "１"])))
    assert not digits_are_ascii(joined(pa.array(["٣"])))


@settings(max_examples=100, deadline=None)
@given(st.lists(cells(), max_size=20))
def test_plan_detectors_in_the_engine_equal_the_reference(values: list[str | None]) -> None:
    detectors = {
        "member": custom_detector("member", r"M-\d{4}"),
        "vip": custom_detector("vip", r"VIP(\d{16})", "luhn"),
        "card16": custom_detector("card16", r"\b\d{16}\b", "luhn"),
        "rid": custom_detector("rid", r"(?<!\d)\d{17}[\dXx](?!\d)", "cn_resident_id"),
        "code": custom_detector("code", r"[0-9A-Z]{18}", "cn_uscc"),
    }
    column = to_strings(values)
    _, hits = column_hits(rules_for(detectors), column)
    mask = non_empty(column)
    for name, det in detectors.items():
        want = [v is not None and bool(v.strip()) and det.hit(v) for v in values]
        assert [bool(h and m) for h, m in zip(hits[name].hit, mask, strict=True)] == want


@given(st.lists(st.one_of(st.text(alphabet=ALPHABET, max_size=20), identifier), max_size=40))
def test_vectorized_checks_equal_per_value_checks(values: list[str]) -> None:
    array = pa.array(values, type=pa.string())
    assert list(vec.resident_id(array)) == [is_valid_resident_id(v) for v in values]
    assert list(vec.uscc(array)) == [ref_uscc(v) for v in values]
    assert list(vec.uscc_code(array)) == [is_valid_uscc(v) for v in values]
    assert list(vec.bank_card(array)) == [ref_bank_card(v) for v in values]
    assert list(vec.luhn(array)) == [BUILTIN_LUHN(v) for v in values]


def BUILTIN_LUHN(value: str) -> bool:  # noqa: N802 (the plan validator, by its name)
    from retirement.inventory.detect import VALIDATORS

    return VALIDATORS["luhn"](value)


def test_free_text_counts_whole_and_embedded_cells() -> None:
    rid = "11010519491231002" + ric_check_char("11010519491231002")
    scanner = EngineScanner()
    scanner.feed([rid, f"客户身份证号{rid}已核实", "手机13800138000，邮箱 li@example.com", "无"])
    scanner.feed(pa.array([f" {rid} ", None, "13800138000"]))
    scan = scanner.result()
    assert scan.non_empty == 6
    assert scan.hits["cn_resident_id"] == 3
    assert scan.whole["cn_resident_id"] == 2
    assert scan.embedded("cn_resident_id") == 1
    assert (scan.hits["cn_mobile"], scan.embedded("cn_mobile")) == (2, 1)
    assert (scan.hits["email"], scan.embedded("email")) == (1, 1)
    assert luhn_ok("79927398713")


def test_byte_matrix_takes_only_values_of_the_width() -> None:
    matrix, keep = vec.byte_matrix(pa.array(["abc", "de", None, "fgh"]).slice(1), 3)
    assert keep.tolist() == [False, False, True]
    assert matrix.tobytes() == b"fgh"
    assert np.array_equal(vec.resident_id(pa.array([], type=pa.string())), np.zeros(0, bool))


def test_a_few_ids_pasted_into_remarks_make_the_column_sensitive() -> None:
    from retirement.inventory.scan import decide_column
    from retirement.plan.policy import ClassificationPolicy

    policy = ClassificationPolicy.default()
    rid = "11010519491231002" + ric_check_char("11010519491231002")
    bad = rid[:17] + ("0" if rid[17] != "0" else "1")
    remarks = ["物流太慢，希望改进"] * 100_000
    for i in range(0, 3_700, 100):
        remarks[i] = f"客户身份证号{rid}已核实"
    scanner = EngineScanner()
    scanner.feed(remarks)
    scan = scanner.result()
    detected, found = decide_column("remark", scan, scan, policy, BUILTIN)
    assert (detected, found, scan.embedded("cn_resident_id")) == (None, {"cn_resident_id": 37}, 37)
    assert policy.class_of("cn_resident_id") == "sensitive"
    numbers = EngineScanner()
    numbers.feed([bad] * 1_000)
    assert decide_column("id_number", numbers.result(), numbers.result(), policy, BUILTIN) == (
        None,
        {},
    )


SEPARATORS = st.sampled_from(["", " ", "-", "X", "a", "，", "\n", " - ", "号", "0", "1 ", "\t"])


@st.composite
def crowded(draw: st.DrawFn) -> str:
    """Several identifiers in one cell, next to each other or a character apart: the engine
    finds them match by match in C (``_first_matches``), each after the one before."""
    parts = draw(
        st.lists(st.one_of(resident_ids(), usccs(), cards(), digits), min_size=2, max_size=5)
    )
    seps = draw(st.lists(SEPARATORS, min_size=len(parts) + 1, max_size=len(parts) + 1))
    return "".join(s + p for s, p in zip(seps, parts, strict=False)) + seps[-1]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(crowded(), cells()), min_size=1, max_size=20))
@example(["110105194912310021 91350100M000100Y43", "91350100M000100Y43 110105194912310021"])
@example(["4111111111111111-110105194912310021 6222020200112345678"])
# a card number's run passes Luhn alone, but the reference's match is the whole grouped
# number before it (which fails): a cell with a group joined by a space is not read by runs
@example(["1234 4878310122283"])
def test_cells_with_several_identifiers_equal_the_reference(values: list[str | None]) -> None:
    column = to_strings(values)
    _, hits = column_hits(rules_for(BUILTIN), column)
    mask = non_empty(column)
    for name in BUILTIN:
        got = [bool(h) and bool(m) for h, m in zip(hits[name].hit, mask, strict=True)]
        assert got == _reference(name, values), name
        if name not in ("cn_resident_id", "cn_uscc", "bank_card"):
            continue  # the rules matched in C; a name's or address's whole is its hit
        whole = [
            v is not None and bool(v.strip()) and BUILTIN[name].find(v) == [v.strip()]
            for v in values
        ]
        assert [bool(w) for w in hits[name].whole] == whole, name


SHAPED = [r for r in rules_for(BUILTIN).values() if r.whole is not None]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_cell_of_a_whole_shape_is_of_its_byte_lengths_and_a_candidate(
    data: st.DataObject,
) -> None:
    """The engine tries a shape only on cells of ``whole_bytes`` and takes shaped cells out
    before the prefilter: both are right only if every cell of the shape is of those lengths
    and matches the prefilter."""
    for rule in SHAPED:
        value = data.draw(st.from_regex(rule.whole, fullmatch=True), label=rule.name)
        pad = data.draw(st.sampled_from(["", " ", "\t", " \t "]))
        if rule.whole_bytes is not None:
            low, high = rule.whole_bytes
            assert low <= len(value.encode()) <= high, rule.name
        assert rule.loose is not None
        assert pc.match_substring_regex(pa.array([pad + value + pad]), rule.loose)[0].as_py()


@settings(max_examples=150, deadline=None)
@given(st.lists(cells(), max_size=25))
def test_one_set_pass_finds_the_rules_each_pass_finds(values: list[str | None]) -> None:
    """The RE2::Set over the joined batch answers, for every rule, what its own search says."""
    rules = rules_for(
        {
            **BUILTIN,
            "member": custom_detector("member", r"M-\d{4}"),
            "vip": custom_detector("vip", r"VIP(\d{16})", "luhn"),
        }
    )
    batch = Batch.of(to_strings(values))
    assert batch_rules(batch, rules) == {n for n, r in rules.items() if batch_may_match(batch, r)}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=ALPHABET, max_size=22),
            identifier,
            st.text("0123456789Xx", max_size=20),
        ),
        max_size=30,
    ),
)
def test_numpy_shapes_equal_their_regex(values: list[str]) -> None:
    column = pc.utf8_trim(pa.array(values, type=pa.string()), " \t")
    for rule in SHAPED:
        if rule.shape is not None:
            want = pc.match_substring_regex(column, rule.whole).to_pylist()
            assert rule.shape(column).tolist() == want, rule.name


def _cell_by_cell(batches: list[list[str | None]]) -> EngineScanner:
    scanner = EngineScanner(by_value=False)
    for batch in batches:
        scanner.feed(batch)
    return scanner


@settings(max_examples=150, deadline=None)
@given(
    st.lists(cells(), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=40), min_size=1, max_size=4),
)
@example([None, "  ", "13800138000"], [[0, 1, 2, 2, 2, 1, 0]])
def test_a_column_of_repeated_values_counts_every_cell(
    pool: list[str | None], picks: list[list[int]]
) -> None:
    """A batch of few distinct values is scanned once per value and weighted by how often
    each occurs: the counts are those of scanning every cell."""
    batches = [[pool[i % len(pool)] for i in batch] for batch in picks]
    by_value = EngineScanner()
    for batch in batches:
        by_value.feed(batch)
    assert by_value.result() == _cell_by_cell(batches).result()
    # batches are tried by value until one has too many distinct values (then cell by cell)
    pays = list(itertools.takewhile(lambda b: len(set(b) - {None}) * 2 <= len(b), batches))
    assert by_value.batches_by_value == len(pays)


def test_a_column_of_distinct_values_is_scanned_cell_by_cell_and_tried_again_later() -> None:
    rid = "11010519491231002" + ric_check_char("11010519491231002")
    distinct = [f"{i:011d}" for i in range(64)]
    repeated = [rid, "物流太慢", rid, None] * 16
    scanner = EngineScanner()
    scanner.feed(distinct)  # tried: it does not pay, so the next batches go cell by cell
    for _ in range(EngineScanner.RETRY_AFTER):
        scanner.feed(repeated)
    assert scanner.batches_by_value == 0
    scanner.feed(repeated)  # tried again
    assert scanner.batches_by_value == 1
    batches = [distinct] + [repeated] * (EngineScanner.RETRY_AFTER + 1)
    assert scanner.result() == _cell_by_cell(batches).result()
    assert scanner.result().hits["cn_resident_id"] == 32 * (EngineScanner.RETRY_AFTER + 1)
