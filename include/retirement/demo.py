"""Generate the demo company: a SQLite CRM and a folder of exported files.

Deterministic (seeded), bilingual (Chinese and English), with valid identifiers (check
digits computed, not copied) and deliberate traps for the detectors: an ``id_number``
column full of 18-digit order references that fail MOD 11-2, and a free-text ``remark``
column with ID and phone numbers among ordinary complaints.

Run: ``python -m retirement.demo OUT_DIR``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from datetime import date, timedelta
from pathlib import Path

from retirement.model.identifiers import (
    USCC_ALPHABET,
    luhn_check_digit,
    ric_check_char,
    uscc_check_char,
)

SURNAMES = [
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
]
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超"]
PINYIN = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"]
GIVEN_PINYIN = ["Wei", "Fang", "Na", "Min", "Jing", "Lei", "Yang", "Yan", "Yong", "Jun"]
REGIONS = ["110101", "310115", "440305", "330106", "510104", "320102"]
CITIES = [
    ("上海市", "浦东新区", "世纪大道"),
    ("北京市", "朝阳区", "建国路"),
    ("广东省深圳市", "南山区", "科技园路"),
    ("浙江省杭州市", "西湖区", "文三路"),
]
STREETS_EN = [
    ("Century Avenue", "Pudong", "Shanghai"),
    ("Jianguo Road", "Chaoyang", "Beijing"),
    ("Keji Road", "Nanshan", "Shenzhen"),
]
COMPLAINTS = [
    "物流太慢，希望改进",
    "The parcel arrived damaged.",
    "发票抬头错误，请重开",
    "客服态度很好，谢谢",
    "Refund has not arrived yet.",
    "产品质量不错",
]


def resident_id(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    body = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric_check_char(body)


def bank_card(rng: random.Random) -> str:
    body = "62" + "".join(str(rng.randrange(10)) for _ in range(15))
    return body + luhn_check_digit(body)


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def uscc(rng: random.Random) -> str:
    body = (
        "91"
        + rng.choice(["310000", "110108", "440300"])
        + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    )
    return body + uscc_check_char(body)


def order_ref(rng: random.Random) -> str:
    """An 18-digit order reference that is NOT a valid resident ID (check char forced wrong)."""
    body = (
        f"{rng.choice(REGIONS)}2024{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        f"{rng.randrange(1000):03d}"
    )
    good = ric_check_char(body)
    return body + ("0" if good != "0" else "1")


def _person(rng: random.Random, i: int) -> tuple[str, str, str]:
    """(name, e-mail, address): Chinese for two customers in three, English otherwise."""
    if i % 3:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(["", *GIVEN])
        prov, dist, road = rng.choice(CITIES)
        address = f"{prov}{dist}{road}{rng.randrange(1, 999)}号"
    else:
        name = f"{rng.choice(GIVEN_PINYIN)} {rng.choice(PINYIN)}"
        road, dist, city = rng.choice(STREETS_EN)
        address = f"{rng.randrange(1, 999)} {road}, {dist}, {city}"
    return name, f"customer{i}@mail{rng.randrange(9)}.example.com", address


# Indented as the tables were first made: SQLite keeps the text of each CREATE TABLE.
CRM_SCHEMA = """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, id_card TEXT, mobile TEXT,
                                email TEXT, address TEXT, created_at TEXT);
        CREATE TABLE bank_accounts (id INTEGER PRIMARY KEY, customer_id INTEGER, card_no TEXT,
                                    bank TEXT);
        CREATE TABLE orders (order_no INTEGER PRIMARY KEY, customer_id INTEGER, id_number TEXT,
                             amount REAL, status TEXT);
        CREATE TABLE invoices (invoice_no TEXT PRIMARY KEY, customer_id INTEGER, buyer_name TEXT,
                               buyer_uscc TEXT, amount REAL, issued_on TEXT);
        CREATE TABLE complaints (id INTEGER PRIMARY KEY, customer_id INTEGER, channel TEXT,
                                 remark TEXT);
        CREATE TABLE marketing_events (id INTEGER PRIMARY KEY, email TEXT, ip_address TEXT,
                                       campaign TEXT);
"""
CRM_TABLES = ("customers", "bank_accounts", "orders", "invoices", "complaints", "marketing_events")
BANKS = ["中国工商银行", "招商银行", "Bank of China"]
ORDER_STATUSES = ["paid", "shipped", "refunded"]
CHANNELS = ["phone", "email", "web"]
CAMPAIGNS = ["spring-sale", "newsletter", "双十一"]


def build_crm(path: Path, rng: random.Random, customers: int) -> dict[str, int]:
    """A new SQLite CRM at ``path`` with ``customers`` customers and their rows in the other
    tables; the number of rows in each table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(CRM_SCHEMA)
    counts = dict.fromkeys(CRM_TABLES, 0)
    for i in range(1, customers + 1):
        _add_customer(db, rng, i, counts)
    counts["customers"] = counts["bank_accounts"] = customers
    db.commit()
    db.close()
    return counts


def _add_customer(
    db: sqlite3.Connection, rng: random.Random, i: int, counts: dict[str, int]
) -> None:
    """Customer ``i`` with a bank account, one to three orders, an invoice, a complaint from
    every second customer and a marketing event; ``counts`` numbers the rows.

    The values are drawn from ``rng`` in the order they are written here (each row's left to
    right): the seed makes the same company every time."""
    name, email, address = _person(rng, i)
    db.execute(
        "INSERT INTO customers VALUES (?,?,?,?,?,?,?)",
        (i, name, resident_id(rng), mobile(rng), email, address, _created_at(rng)),
    )
    db.execute(
        "INSERT INTO bank_accounts VALUES (?,?,?,?)", (i, i, bank_card(rng), rng.choice(BANKS))
    )
    for _ in range(rng.randrange(1, 4)):
        counts["orders"] += 1
        db.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?)",
            (counts["orders"], i, order_ref(rng), _amount(rng), rng.choice(ORDER_STATUSES)),
        )
    counts["invoices"] += 1
    db.execute(
        "INSERT INTO invoices VALUES (?,?,?,?,?,?)",
        (f"INV{2024000000 + i}", i, name, uscc(rng), _amount(rng), _issued_on(rng)),
    )
    if i % 2 == 0:
        counts["complaints"] += 1
        remark = _remark(rng, with_identifiers=i % 4 == 0)
        db.execute(
            "INSERT INTO complaints VALUES (?,?,?,?)",
            (counts["complaints"], i, rng.choice(CHANNELS), remark),
        )
    counts["marketing_events"] += 1
    db.execute(
        "INSERT INTO marketing_events VALUES (?,?,?,?)",
        (i, email, _private_ip(rng), rng.choice(CAMPAIGNS)),
    )


def _created_at(rng: random.Random) -> str:
    return f"20{rng.randrange(15, 25)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"


def _issued_on(rng: random.Random) -> str:
    return f"2024-{rng.randrange(1, 13):02d}-15"


def _amount(rng: random.Random) -> float:
    return round(rng.uniform(10, 5000), 2)


def _remark(rng: random.Random, *, with_identifiers: bool) -> str:
    """A complaint's free text; some carry identifiers among the words (a detector's trap)."""
    text = rng.choice(COMPLAINTS)
    if with_identifiers:
        text = f"客户 {resident_id(rng)} 来电：{text} 回电 {mobile(rng)}"
    return text


def _private_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def build_exports(root: Path, rng: random.Random, rows: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "customers_2024.csv").open("w", encoding="utf-8", newline="") as f:
        f.write("name,mobile,email\n")
        for i in range(rows):
            name, email, _ = _person(rng, i)
            f.write(f"{name},{mobile(rng)},{email}\n")
    with (root / "newsletter_subscribers.jsonl").open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(
                json.dumps(
                    {
                        "email": f"reader{i}@news.example.org",
                        "ip": f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                        "since": "2023-05-01",
                    }
                )
                + "\n"
            )
    contracts = root / "contracts"
    contracts.mkdir(exist_ok=True)
    for n in range(3):
        (contracts / f"contract_{n + 1:04d}.pdf").write_bytes(
            b"%PDF-1.4\n% demo contract "
            + str(n).encode()
            + bytes(rng.randrange(256) for _ in range(2048))
        )
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def generate(out: Path, *, seed: int = 2026, customers: int = 300) -> dict[str, object]:
    """Create ``out/crm.sqlite`` and ``out/exports/``; return what was made."""
    rng = random.Random(seed)
    crm = build_crm(out / "crm.sqlite", rng, customers)
    files = build_exports(out / "exports", rng, customers // 2)
    return {"crm": crm, "exports": files}


if __name__ == "__main__":
    made = generate(Path(sys.argv[1]))
    sys.stdout.write(json.dumps(made, ensure_ascii=False) + "\n")
