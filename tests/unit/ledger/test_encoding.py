"""Encoding 3 of the chain (ledger.encoding): RFC 8785 lines whose hashes sha256sum and a
POSIX shell loop recompute, and older ledgers that keep verifying with their own encoding."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from retirement.errors import ChainBroken
from retirement.ledger.chain import GENESIS
from retirement.ledger.core import Ledger
from retirement.ledger.encoding import JCS, LEGACY, META_KEY, canonical, number

if TYPE_CHECKING:
    from pathlib import Path

# A POSIX shell loop that recomputes every hash of a file of encoding 3 lines from GENESIS
# and prints the last one: exactly what docs/audit.md tells an auditor to run.
SHELL_LOOP = r"""
h=0000000000000000000000000000000000000000000000000000000000000000
while IFS= read -r line; do
  d=$(printf '%s' "$line" | sha256sum | cut -c1-64)
  h=$(printf '%s%s' "$h" "$d" | sha256sum | cut -c1-64)
done < "$1"
printf '%s\n' "$h"
"""


@pytest.mark.parametrize(
    ("value", "text"),
    [  # RFC 8785 appendix B, and the values Python prints differently
        pytest.param(1.0, "1", id="integral"),
        pytest.param(0.0, "0", id="zero"),
        pytest.param(-0.0, "0", id="minus-zero"),
        pytest.param(0.5, "0.5", id="half"),
        pytest.param(1e-7, "1e-7", id="small"),
        pytest.param(0.000001, "0.000001", id="micro"),
        pytest.param(1e21, "1e+21", id="big"),
        pytest.param(1e20, "100000000000000000000", id="1e20"),
        pytest.param(1.2345678901234568e20, "123456789012345680000", id="digits-then-zeros"),
        pytest.param(333333333.3333332, "333333333.3333332", id="rfc-b"),
        pytest.param(5e-324, "5e-324", id="min-subnormal"),
        pytest.param(1.7976931348623157e308, "1.7976931348623157e+308", id="max"),
        pytest.param(9007199254740994.0, "9007199254740994", id="2^53+2"),
        pytest.param(-1.5e-10, "-1.5e-10", id="negative-exponent"),
    ],
)
def test_numbers_print_as_ecmascript_does(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_without_a_json_form_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="RFC 8785 refuses"):
        canonical({"x": value})


def test_keys_sort_by_utf16_code_units_and_strings_keep_only_the_rfc_escapes() -> None:
    text = 'a"\\\x1f/'
    value = {"\u20ac": 1, "\r": 2, "\U0001f600": 3, "\ufb33": 4, "1": [1.0, None, True, text]}
    assert canonical(value) == (
        '{"\\r":2,"1":[1,null,true,"a\\"\\\\\\u001f/"],"\u20ac":1,"\U0001f600":3,"\ufb33":4}'
    )


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_in_its_shortest_form(value: float) -> None:
    text = number(value)
    assert float(text) == value
    digits = text.partition("e")[0]
    assert "." not in digits or not digits.endswith("0")
    if value.is_integer() and abs(value) < 1e21:
        assert text.lstrip("-").isdigit(), text


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(blacklist_categories=["Cs"])), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_canonical_text_is_a_fixed_point_of_parsing(value: object) -> None:
    """What the ledger stores (the canonical text) parses back to values whose canonical
    text is the same bytes: the hash covers what is read back."""
    text = canonical(value)
    assert canonical(json.loads(text)) == text
    assert " " not in text.replace('" "', "") or '"' in text


def _export(ledger: Ledger, path: Path) -> str:
    lines = [e.line() for e in ledger.events()]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return ledger.head()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_a_shell_loop_with_sha256sum_recomputes_the_chain(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    awkward = {"ratio": 1.0, "half": 0.5, "tiny": 1e-7, "text": "客户 'quoted' \"x\" \\ $HOME `id`"}
    ledger.append("a", actor="t\u00e9st", run_id="r", dataset="crm.客户", payload=awkward)
    ledger.append("b", actor="t", run_id=None, payload={"nested": {"z": [1, 2.5], "a": None}})
    ledger.append("c", actor="t", run_id="r", payload={"line\nbreak": "tab\there"})
    assert [e.encoding for e in ledger.events()] == [JCS] * 3
    exported = tmp_path / "ledger.jsonl"
    head = _export(ledger, exported)
    assert exported.read_text().count("\n") == 3  # one event a line: newlines are escaped
    out = subprocess.run(
        ["sh", "-c", SHELL_LOOP, "sh", str(exported)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == head
    # One changed byte anywhere and the loop ends elsewhere.
    exported.write_text(exported.read_text().replace("0.5", "0.6"))
    out = subprocess.run(
        ["sh", "-c", SHELL_LOOP, "sh", str(exported)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() != head
    ledger.close()


def _legacy_ledger(url: str) -> Ledger:
    """A ledger as format 2 wrote it: no encoding 3 start recorded."""
    Ledger.open(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("DELETE FROM ledger_meta WHERE key = :k"), {"k": META_KEY})
        conn.execute(sa.text("UPDATE ledger_meta SET value = '2' WHERE key = 'format_version'"))
    return Ledger.open(url, create=False)


def test_an_older_ledger_keeps_its_encoding_and_goes_on_in_encoding_3(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    old = _legacy_ledger(url)
    old.append("a", actor="v2", run_id="r", payload={"ratio": 1.0})
    old.append("b", actor="v2", run_id="r", payload={"ratio": 0.25})
    with old.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT payload FROM events WHERE seq = 1")).scalar()
    assert stored == '{"ratio":1.0}'  # Python's form, as format 2 stored it
    old.close()
    ledger = Ledger.open(url)  # opened for writing: recorded as format 3 from event 3
    ledger.append("c", actor="v3", run_id="r", payload={"ratio": 1.0})
    events = list(ledger.events())
    assert [e.encoding for e in events] == [LEGACY, LEGACY, JCS]
    assert all(e.compute_hash() == e.hash for e in events)
    assert events[2].line() == (
        f'{{"actor":"v3","at":"{events[2].at}","dataset":null,"kind":"c",'
        '"payload":{"ratio":1},"run_id":"r","seq":3}'
    )
    assert ledger.verify().events == 3
    with ledger.engine.begin() as conn:
        meta = dict(conn.execute(sa.text("SELECT key, value FROM ledger_meta")).all())
        assert meta == {"format_version": "3", META_KEY: "3"}
        # The recorded start is part of what verifies: moving it breaks the chain.
        conn.execute(sa.text("UPDATE ledger_meta SET value = '2' WHERE key = :k"), {"k": META_KEY})
    with pytest.raises(ChainBroken, match="event 2"):
        ledger.verify()
    ledger.close()


def test_a_new_ledger_is_encoding_3_from_its_first_event(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    event = ledger.append("a", actor="t", run_id="r", payload={"n": 2.0})
    assert event is not None
    assert event.encoding == JCS
    assert event.prev_hash == GENESIS
    assert event.payload == {"n": 2}  # what is stored and read back
    with ledger.engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT value FROM ledger_meta WHERE key = :k"), {"k": META_KEY}
            ).scalar()
            == "1"
        )
    ledger.close()
