"""``record_lists`` (records cut from whole blocks, C where it can) against ``csv_records``
(line by line, the reference): the same records, the same error, for any bytes and any cut
into chunks."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retirement.errors import IntegrityError
from retirement.formats.csv import (
    csv_line,
    csv_records,
    physical_lines,
    record_ends,
    record_lists,
)

# Bytes made mostly of what decides a record's end: quotes, newlines, carriage returns.
_ALPHABET = st.sampled_from([b'"', b"\n", b"\r", b",", b"a", b"\xe5", b'""', b"\r\n"])


def _reference(chunks: list[bytes]) -> list[bytes] | str:
    try:
        return list(csv_records(physical_lines(iter(chunks), hashlib.sha256(), [0])))
    except IntegrityError as exc:
        return str(exc)


def _ours(chunks: list[bytes]) -> list[bytes] | str:
    try:
        return [r for records in record_lists(iter(chunks)) for r in records]
    except IntegrityError as exc:
        return str(exc)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    at = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map(b"".join), st.lists(st.integers(0, 200), max_size=6))
def test_any_bytes_cut_anywhere_give_the_references_records(data: bytes, cuts: list[int]) -> None:
    chunks = _cut(data, cuts)
    assert _ours(chunks) == _reference(chunks)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=8)), min_size=1, max_size=4),
        max_size=30,
    ),
    st.lists(st.integers(0, 2000), max_size=5),
)
def test_backup_lines_come_back_as_written(rows: list[list[object]], cuts: list[int]) -> None:
    lines = [csv_line(row) for row in rows]
    chunks = _cut(b"".join(lines), cuts)
    assert _ours(chunks) == lines == _reference(chunks)


def test_a_record_cut_inside_its_quotes_is_refused() -> None:
    with pytest.raises(IntegrityError, match="truncated"):
        [r for records in record_lists(iter([b'1,"a\n', b"b\n2,"])) for r in records]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.none() | st.integers() | st.text(st.sampled_from('a"\n\r,客😀')), max_size=4),
        max_size=12,
    ),
    st.integers(0, 400),
)
def test_record_ends_count_the_whole_lines_of_any_prefix(
    rows: list[list[object]], cut: int
) -> None:
    """``record_ends`` (numpy) counts the backup lines wholly inside any prefix of them."""
    lines = [csv_line(row) for row in rows]
    data = b"".join(lines)[:cut]
    whole = 0
    while whole < len(lines) and len(b"".join(lines[: whole + 1])) <= len(data):
        whole += 1
    assert record_ends(data) == whole
