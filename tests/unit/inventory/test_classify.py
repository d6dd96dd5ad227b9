"""Classification: values decide, headers only shift confidence, datasets take the highest class."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from retirement.inventory.detect import BUILTIN, ColumnScan
from retirement.inventory.scan import decide_column, header_hints, scan_dataset, totals
from retirement.model.identifiers import ric_check_char
from retirement.plan.policy import ClassificationPolicy
from retirement.sources.sql import SqlSource

POLICY = ClassificationPolicy.default()


def _scan(non_empty: int, **hits: int) -> ColumnScan:
    return ColumnScan(non_empty=non_empty, hits=dict(hits))


@pytest.mark.parametrize(
    ("header", "scan", "expected"),
    [
        pytest.param(
            "remark",
            _scan(100, cn_resident_id=100),
            "cn_resident_id",
            id="innocent-header-full-of-ids",
        ),
        pytest.param("id_number", _scan(100), None, id="id-header-no-valid-values"),
        pytest.param(
            "id_card", _scan(100, cn_resident_id=40), "cn_resident_id", id="header-lowers-threshold"
        ),
        pytest.param("remark", _scan(100, cn_resident_id=40), None, id="no-hint-needs-threshold"),
        pytest.param(
            "order_no", _scan(100, bank_card=70), None, id="non-personal-header-raises-threshold"
        ),
        pytest.param(
            "order_no", _scan(100, bank_card=90), "bank_card", id="values-still-win-over-header"
        ),
        pytest.param(
            "contact", _scan(100, cn_mobile=70, email=80), "email", id="highest-ratio-wins"
        ),
        pytest.param("empty", _scan(0), None, id="empty-column"),
        pytest.param("手机号码", _scan(100, cn_mobile=30), "cn_mobile", id="chinese-header-hint"),
    ],
)
def test_decide_column(header: str, scan: ColumnScan, expected: str | None) -> None:
    detected, _found = decide_column(header, scan, scan, POLICY, BUILTIN)
    assert detected == expected


def test_validated_identifiers_below_threshold_are_still_found() -> None:
    detected, found = decide_column(
        "remark", _scan(100, cn_resident_id=5, email=5), _scan(10), POLICY, BUILTIN
    )
    assert detected is None
    assert found == {"cn_resident_id": 5}  # email is not checksum-validated


def test_luhn_chance_hits_are_not_bank_cards() -> None:
    _, found = decide_column("ref", _scan(1000, bank_card=100), _scan(10), POLICY, BUILTIN)
    assert found == {}  # one random number in ten passes Luhn
    _, found = decide_column("ref", _scan(1000, bank_card=300), _scan(10), POLICY, BUILTIN)
    assert found == {"bank_card": 300}


def test_header_hints() -> None:
    assert "cn_mobile" in header_hints("customer_mobile")[0]
    assert "ip_address" not in header_hints("zip_code")[0]  # 'ip' must be a word, not a substring
    assert header_hints("order_no")[1] is True
    assert "cn_resident_id" in header_hints("身份证号")[0]


def test_policy_order_and_escalation() -> None:
    assert POLICY.highest(["general", "sensitive", "general"]) == "sensitive"
    assert POLICY.highest([]) == "general"
    assert POLICY.escalated("sensitive", 999_999) == "sensitive"
    assert POLICY.escalated("sensitive", 1_000_000) == "core"
    assert POLICY.escalated("general", 5_000_000) == "general"
    assert POLICY.class_of("some_plan_detector") == "sensitive"  # unknown types fail safe


def test_dataset_takes_the_highest_column_class(tmp_path: Path) -> None:
    rid = "11010519491231002" + ric_check_char("11010519491231002")
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, note TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?,?,?)",
            [(i, f"u{i}@example.com", f"身份证 {rid}" if i == 3 else "ok") for i in range(1, 11)],
        )
    with SqlSource("s", f"sqlite:///{db}") as source:
        (ref,) = source.datasets()
        report = scan_dataset(source, ref, POLICY)
    cols = {c.name: c for c in report.columns}
    assert cols["email"].detected == "email"
    assert cols["email"].data_class == "general"
    assert cols["note"].detected is None
    assert cols["note"].found == {"cn_resident_id": 1}
    assert cols["note"].data_class == "sensitive"
    assert report.data_class == "sensitive"
    assert report.rows == 10
    assert totals([report]) == {"sensitive": {"datasets": 1, "rows": 10, "bytes": 0}}


def test_sampled_scan_reports_exact_rows(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT)")
        conn.executemany("INSERT INTO t VALUES (?,?)", [(i, f"u{i}@x.org") for i in range(2500)])
    policy = POLICY.model_copy(update={"sample_rows": 100})
    seen: list[int] = []
    with SqlSource("s", f"sqlite:///{db}") as source:
        (ref,) = source.datasets()
        report = scan_dataset(source, ref, policy, full=False, on_rows=seen.append)
    assert report.rows == 2500
    assert sum(seen) < 2500  # stopped early
    assert report.columns[1].detected == "email"


def test_order_numbers_passing_checks_by_chance_stay_general(tmp_path: Path) -> None:
    """Found in the demo: 18-digit order numbers pass the USCC mod-31 check one time in 31."""
    db = tmp_path / "orders.sqlite"
    values = []
    for i in range(1000):
        body = f"3101152024{i % 12 + 1:02d}15{i:03d}"[:17]
        good = ric_check_char(body)
        values.append((i, body + ("0" if good != "0" else "1")))
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, id_number TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?,?)", values)
    with SqlSource("s", f"sqlite:///{db}") as source:
        (ref,) = source.datasets()
        report = scan_dataset(source, ref, POLICY)
    column = report.columns[1]
    assert column.found == {}
    assert column.data_class == "general"
    assert report.data_class == "general"


def test_plan_custom_detector_is_used(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE members (id INTEGER PRIMARY KEY, member_card TEXT)")
        conn.executemany(
            "INSERT INTO members VALUES (?,?)",
            [(i, f"VIP-{4111111111111111 + i * 0}") for i in range(20)],
        )
    policy = ClassificationPolicy.model_validate(
        {
            **POLICY.model_dump(by_alias=True),
            "custom_detectors": {"vip_card": {"pattern": r"VIP-(\d{16})", "validator": "luhn"}},
            "detectors": {**POLICY.detectors, "vip_card": "core"},
        }
    )
    with SqlSource("s", f"sqlite:///{db}") as source:
        (ref,) = source.datasets()
        report = scan_dataset(source, ref, policy)
    card = report.columns[1]
    assert card.detected == "vip_card"
    assert card.data_class == "core"
    assert report.data_class == "core"
