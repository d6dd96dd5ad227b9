"""The harder labeled set of the inventory benchmark: identifiers inside Chinese and English
sentences, near misses with wrong check digits, order numbers and phone-like numbers that
are no phones, a mixed column (5% IDs), a NULL-heavy column and very long text cells.

Each cell carries the set of types truly in it (a remark can hold a phone and an e-mail).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from retirement.model.identifiers import luhn_check_digit, ric_check_char


def _rid(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 60))
    body = f"{rng.choice(['110101', '310115', '440305', '510104'])}{born:%Y%m%d}"
    body += f"{rng.randrange(1000):03d}"
    return body + ric_check_char(body)


def _bad(s: str) -> str:
    return s[:-1] + ("0" if s[-1] != "0" else "1")


def _mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"


def _card(rng: random.Random) -> str:
    body = "62" + "".join(str(rng.randrange(10)) for _ in range(15))
    return body + luhn_check_digit(body)


FILLER = "物流太慢希望改进客服态度很好已经处理完毕请尽快发货谢谢 "
EN_FILLER = "the parcel arrived late and the customer asked for a refund "


def _sentence(rng: random.Random) -> tuple[str, set[str]]:
    rid, mob = _rid(rng), _mobile(rng)
    mail = f"user{rng.randrange(10**5)}@example.com"
    choices = [
        (f"客户身份证号{rid}已核实", {"cn_resident_id"}),
        (f"Customer ID {rid} verified; call back on {mob}.", {"cn_resident_id", "cn_mobile"}),
        (f"回电 {mob}，邮箱 {mail}", {"cn_mobile", "email"}),
        (f"Please refund to card {_card(rng)} by Friday", {"bank_card"}),
        (f"身份证{_bad(rid)}有误，请重新提交", set()),  # wrong check digit
        (f"订单号{rid[:-1]}{rid[-1]}7 已发货", set()),  # 19 digits: no ID
        (f"Order SO{rng.randrange(10**15):015d} shipped", set()),
        (f"分机 {rng.randrange(10**6):06d}，工号 1{rng.randrange(10**5):05d}", set()),
        (f"tracking 12{rng.randrange(10**9):09d}", set()),  # 12x is not a mobile range
        (f"amount {rng.randrange(10**11, 10**12)} fen", set()),
        (f"{_bad(_card(rng))} 卡号校验失败", set()),
    ]
    return rng.choice(choices)


def hard_labeled(n: int, seed: int = 11) -> list[tuple[str | None, set[str]]]:
    """``n`` cells and their true types, in five column-like runs."""
    rng = random.Random(seed)
    out: list[tuple[str | None, set[str]]] = []
    part = n // 5
    out += [_sentence(rng) for _ in range(part)]
    for _ in range(part):  # a mixed column: 5% IDs among codes and numbers
        if rng.random() < 0.05:
            out.append((_rid(rng), {"cn_resident_id"}))
        else:
            out.append(
                (
                    rng.choice([f"A{rng.randrange(10**8)}", str(rng.randrange(10**17, 10**18))]),
                    set(),
                )
            )
    for _ in range(part):  # NULL-heavy
        roll = rng.random()
        out.append(
            (None, set())
            if roll < 0.8
            else ("", set())
            if roll < 0.9
            else (_mobile(rng), {"cn_mobile"})
        )
    for _ in range(part):  # very long text cells, one identifier somewhere in a few of them
        words = [rng.choice([FILLER, EN_FILLER]) for _ in range(rng.randrange(20, 60))]
        truth: set[str] = set()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), f" 联系电话 {_mobile(rng)} ")
            truth = {"cn_mobile"}
        out.append(("".join(words), truth))
    while len(out) < n:
        out.append(_sentence(rng))
    return out
