"""The keys a deletion reads from backed-up lines are the keys the full CSV parser reads:
the fast readers (the leading fields only, one regular expression per batch) agree with
``formats.csv.fields`` on well-formed lines and on any other bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from retirement.deletion.keyed import _keyed
from retirement.formats.csv import csv_line, fields, leading_fields

_PIECES = ["a", '"', ",", "\n", "", "é", '""', " ", "5", "\\", "{", "}"]
_text = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_value = st.one_of(st.none(), _text, st.integers(-5, 10**12))
_rows = st.lists(_value, min_size=1, max_size=6).map(csv_line)
_bytes = st.tuples(_text, st.sampled_from(["", "\n", "\n\n"])).map(lambda t: "".join(t).encode())
_records = st.one_of(_rows, _bytes)
_indexes = st.lists(st.integers(0, 5), min_size=1, max_size=3)


@given(_records, st.integers(1, 7))
def test_leading_fields_are_the_first_fields(record: bytes, count: int) -> None:
    assert leading_fields(record, count) == fields(record)[:count]


@given(st.lists(_records, max_size=6), _indexes)
def test_batch_keys_are_the_parsers_keys(records: list[bytes], index: list[int]) -> None:
    parsed = [fields(r) for r in records]
    if any(max(index) >= len(p) for p in parsed):
        return  # a record without the key's field: the deletion fails on it either way
    keys = [key for key, _sha in _keyed(records, index)]
    assert keys == [tuple(p[i] for i in index) for p in parsed]


def test_a_record_without_the_key_field_is_an_error() -> None:
    try:
        _keyed([b'"1"\n'], [2])
    except IndexError:
        return
    raise AssertionError("a missing key field was read as a key")


@given(
    st.lists(st.lists(_value, min_size=3, max_size=3).map(csv_line), min_size=1, max_size=12),
    _indexes.map(lambda ix: [i % 3 for i in ix]),
)
def test_key_literals_read_in_c_are_the_records_keys(
    records: list[bytes], index: list[int]
) -> None:
    """The batch's array literals pyarrow builds are those of the keys read record by record
    (or None: the caller then reads them record by record)."""
    from retirement.deletion.key_literals import key_literals
    from retirement.deletion.keyed import _array, _key_of_record

    got = key_literals(b"".join(records), len(records), 3, index)
    keys = [_key_of_record(r, index) for r in records]
    want = [_array([k[i][0] for k in keys]) for i in range(len(index))]
    assert got is None or got == want
    if all(b"\n" not in r[:-1] for r in records):
        assert got == want  # lines without a line break inside: always read in C
