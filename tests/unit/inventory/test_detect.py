"""Detectors: each finds its identifiers in values and free text, and rejects near misses."""

from __future__ import annotations

from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from retirement.inventory.detect import BUILTIN, ColumnScanner, custom_detector
from retirement.model.identifiers import luhn_check_digit, ric_check_char, uscc_check_char

RID = "11010519491231002" + ric_check_char("11010519491231002")
RID_BAD = RID[:17] + ("0" if RID[17] != "0" else "1")
USCC = "91310000MA1FL0000" + uscc_check_char("91310000MA1FL0000")
CARD = "621700000000000001" + luhn_check_digit("621700000000000001")
VISA = "4111111111111111"

CASES = [
    # detector, value, expected to hit
    ("cn_resident_id", RID, True),
    ("cn_resident_id", RID.lower() if RID.endswith("X") else RID, True),
    ("cn_resident_id", f"客户身份证 {RID} 已核验", True),
    ("cn_resident_id", RID_BAD, False),
    ("cn_resident_id", "110105199002300011", False),  # 30 February
    ("cn_resident_id", "9" + RID, False),  # inside a longer digit run
    ("cn_resident_id", RID[:17], False),
    ("cn_uscc", USCC, True),
    ("cn_uscc", f"统一社会信用代码：{USCC}。", True),
    ("cn_uscc", USCC[:17] + ("0" if USCC[17] != "0" else "1"), False),
    ("cn_uscc", RID, False),  # a resident ID is not a company code
    ("bank_card", CARD, True),
    ("bank_card", VISA, True),
    ("bank_card", "4111 1111 1111 1111", True),
    ("bank_card", "4111-1111-1111-1111", True),
    ("bank_card", "4111111111111112", False),  # Luhn fails
    ("bank_card", RID, False),  # a valid resident ID is not a card
    ("bank_card", "1234567890123", False),  # no plausible prefix
    ("cn_mobile", "13812345678", True),
    ("cn_mobile", "+86 138 1234 5678", True),
    ("cn_mobile", "008613812345678", True),
    ("cn_mobile", "回电 138-1234-5678 谢谢", True),
    ("cn_mobile", "12812345678", False),  # 12x is not a mobile range
    ("cn_mobile", "138123456789", False),  # 12 digits
    ("cn_landline", "021-55550100", True),
    ("cn_landline", "(010) 6552 1234", True),
    ("cn_landline", "+86 21 5555 0100", True),
    ("cn_landline", "0755-23456789", True),
    ("cn_landline", "13812345678", False),
    ("cn_landline", "2024-01-15", False),
    ("email", "zhang.wei@example.com.cn", True),
    ("email", "联系 li+news@mail.example.org 获取", True),
    ("email", "not an @ email", False),
    ("email", "user@localhost", False),
    ("passport", "E12345678", True),
    ("passport", "EA1234567", True),
    ("passport", "G87654321", True),
    ("passport", "e12345678", False),
    ("passport", "E1234567890", False),
    ("passport", "SKU-E12345678X", False),
    ("person_name", "王伟", True),
    ("person_name", "欧阳娜娜", True),
    ("person_name", "张敏女士", True),
    ("person_name", "Wang Fang", True),
    ("person_name", "Xiaoming Zhang", True),
    ("person_name", "姓名：李静，电话见附件", True),
    ("person_name", "上海演示贸易有限公司", False),
    ("person_name", "Hello World", False),
    ("person_name", "物流太慢", False),
    ("address", "上海市浦东新区世纪大道100号", True),
    ("address", "北京市朝阳区建国路88号SOHO现代城", True),
    ("address", "100 Century Avenue, Pudong, Shanghai", True),
    ("address", "上海", False),
    ("address", "The parcel arrived damaged.", False),
    ("ip_address", "10.1.2.3", True),
    ("ip_address", "login from 192.168.0.254 at 10:00", True),
    ("ip_address", "2001:db8::8a2e:370:7334", True),
    ("ip_address", "256.1.1.1", False),
    ("ip_address", "1.2.3", False),
    ("ip_address", "1.2.3.4.5", False),
    ("ip_address", "12:30", False),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param(n, v, e, id=f"{n}-{'hit' if e else 'miss'}-{i}")
        for i, (n, v, e) in enumerate(CASES)
    ],
)
def test_detector(name: str, value: str, expected: bool) -> None:
    det = BUILTIN[name]
    assert det.hit(value) is expected
    assert bool(det.find(value)) is expected


def test_matches_is_the_whole_value() -> None:
    assert BUILTIN["cn_resident_id"].matches(f"  {RID} ")
    assert not BUILTIN["cn_resident_id"].matches(f"ID {RID}")
    assert BUILTIN["email"].find("a@b.example, c@d.example") == ["a@b.example", "c@d.example"]


@given(st.sampled_from("3456789"), st.integers(0, 9), st.integers(0, 10**8 - 1))
@example("7", 9, 2800)  # phonenumbers cannot parse 17900002800 at all: no opinion to agree with
def test_mobile_agrees_with_phonenumbers(second: str, third: int, rest: int) -> None:
    number = f"1{second}{third}{rest:08d}"
    try:
        parsed = phonenumbers.parse(number, "CN")
    except phonenumbers.NumberParseException:
        return
    is_mobile = phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    if phonenumbers.is_valid_number(parsed) and is_mobile:
        assert BUILTIN["cn_mobile"].hit(number)


def test_scanner_counts_hits_per_cell_and_ignores_empty() -> None:
    scanner = ColumnScanner()
    scanner.feed([RID, f"note {RID}", "plain text", None, "", "   ", RID_BAD])
    scanner.feed([int(VISA), Decimal("13812345678"), b"13912345678"])
    result = scanner.result()
    assert result.non_empty == 7
    assert result.hits["cn_resident_id"] == 2
    assert result.hits["bank_card"] == 1
    assert result.hits["cn_mobile"] == 2
    assert result.ratio("cn_resident_id") == pytest.approx(2 / 7)
    assert result.ratio("email") == 0.0


def test_mixed_free_text_column() -> None:
    values = [f"客户 {RID} 来电" if i % 4 == 0 else "物流太慢" for i in range(100)]
    scanner = ColumnScanner()
    scanner.feed(values)
    assert scanner.result().ratio("cn_resident_id") == 0.25


def test_order_numbers_failing_checksum_are_not_ids() -> None:
    base = "31011520240115"
    values = []
    for i in range(200):
        body = f"{base}{i:03d}"
        good = ric_check_char(body)
        values.append(body + ("0" if good != "0" else "1"))
    scanner = ColumnScanner()
    scanner.feed(values)
    assert scanner.result().hits.get("cn_resident_id", 0) == 0


def test_custom_detectors() -> None:
    plain = custom_detector("employee_no", r"EMP-\d{6}")
    assert plain.hit("by EMP-123456")
    assert not plain.validated
    checked = custom_detector("member_card", r"\b\d{16}\b", "luhn")
    assert checked.validated
    assert checked.hit(VISA)
    assert not checked.hit("4111111111111112")
    with pytest.raises(ValueError, match="invalid regular expression"):
        custom_detector("bad", r"(unclosed")
    with pytest.raises(ValueError, match="unknown validator 'crc'; expected one of"):
        custom_detector("bad", r"\d+", "crc")
