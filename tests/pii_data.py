"""A deterministic table with one column per identifier type, for scanning every source kind.

Values are generated with valid check digits (and deliberate failures where a column must
NOT be detected). ``EXPECTED`` maps each column to the detector that must win it.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from retirement.model.identifiers import luhn_check_digit, ric_check_char, uscc_check_char

COLUMNS = [
    "id",
    "id_card",
    "id_number",
    "remark",
    "card_no",
    "mobile",
    "landline",
    "email",
    "passport",
    "full_name",
    "address",
    "ip",
    "org_code",
    "amount",
]

EXPECTED: dict[str, str | None] = {
    "id": None,
    "id_card": "cn_resident_id",
    "id_number": None,  # 18-digit order numbers that fail MOD 11-2: a misleading header
    "remark": "cn_resident_id",  # valid IDs inside free text under an innocent header
    "card_no": "bank_card",
    "mobile": "cn_mobile",
    "landline": "cn_landline",
    "email": "email",
    "passport": "passport",
    "full_name": "person_name",
    "address": "address",
    "ip": "ip_address",
    "org_code": "cn_uscc",
    "amount": None,
}

_SURNAMES = "王李张刘陈杨黄赵吴周"
_GIVEN = "伟芳娜敏静磊洋艳勇军"
_USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _rid(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    body = f"{rng.choice(['110101', '310115', '440305'])}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric_check_char(body)


def _bad_rid(rng: random.Random) -> str:
    good = _rid(rng)
    wrong = "0" if good[-1] != "0" else "1"
    return good[:-1] + wrong


def rows(n: int = 200, seed: int = 11) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        card = "62" + "".join(str(rng.randrange(10)) for _ in range(15))
        org = "91310000" + "".join(rng.choice(_USCC) for _ in range(9))
        out.append(
            (
                i,
                _rid(rng),
                _bad_rid(rng),
                f"备注：客户身份证 {_rid(rng)} 已核验",
                card + luhn_check_digit(card),
                f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                f"021-{rng.randrange(10**7, 10**8)}",
                f"user{i}@example.com",
                f"E{rng.randrange(10**8):08d}",
                rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                f"上海市浦东新区世纪大道{rng.randrange(1, 999)}号",
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                org + uscc_check_char(org),
                round(rng.uniform(1, 999), 2),
            )
        )
    return out
