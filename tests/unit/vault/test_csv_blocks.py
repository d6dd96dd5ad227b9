"""pyarrow's CSV reader fed whole records: the same table whatever its block size, and a
value longer than a block is read (it failed the read before: "straddling object")."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retirement.formats import csv_blocks
from retirement.formats.csv_blocks import WholeRecords, holds_record_end

VALUE = st.text(alphabet='ab"\n\r,客 ', max_size=30)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


class Trickle(io.RawIOBase):
    """A stream that returns fewer bytes than asked, as a pipe does."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._sizes, self._at = data, sizes or [1], 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        step = self._sizes[self._at % len(self._sizes)] if self._at < len(self._data) else 0
        piece = self._data[self._at : self._at + min(step, len(buffer))]
        buffer[: len(piece)] = piece
        self._at += len(piece)
        return len(piece)


def _csv(rows: list[list[str]], ending: str, quoting: int) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows(rows)
    return out.getvalue().encode()


def _table(stream: object, width: int, block: int) -> pa.Table | str:
    """The table pyarrow reads, or that it refused the CSV (a ``\r`` that Python's writer
    left unquoted makes a malformed one)."""
    names = [f"c{i}" for i in range(width)]
    try:
        return pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, block_size=block, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        ).read_all()
    except pa.ArrowInvalid as exc:
        return "too long a record" if "straddl" in str(exc) else "refused"


def _ends(data: bytes) -> list[int]:
    """Every record end of ``data``, one byte at a time (the reference)."""
    ends, quoted = [], False
    for i, byte in enumerate(data):
        if byte == ord('"'):
            quoted = not quoted
        elif not quoted and (
            byte == 0x0A or (byte == 0x0D and i + 1 < len(data) and data[i + 1] != 0x0A)
        ):
            ends.append(i + 1)
    return ends


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3).flatmap(lambda w: st.lists(st.lists(VALUE, min_size=w, max_size=w))),
    ENDINGS,
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.integers(1, 64),
    st.lists(st.integers(1, 50), max_size=5),
)
@example([["ab\n" * 40]], "\n", csv.QUOTE_ALL, 16, [7])
# pyarrow's own blocks of 22 bytes end between the \r and \n of the value: it read "...客\r"
@example(
    [['"', "aaa", "aaaaaaaaa客"], ['aaaaaaaaa""客\r\n', "", ""]], "\n", csv.QUOTE_ALL, 22, [22]
)
def test_the_table_is_the_one_read_at_once(
    rows: list[list[str]], ending: str, quoting: int, block: int, trickle: list[int]
) -> None:
    """Tiny blocks, short reads, values with line breaks and quotes longer than a block:
    the table pyarrow reads is the table of one block holding everything."""
    data = _csv(rows, ending, quoting)
    if not data:
        return
    width = len(rows[0])
    whole = _table(io.BytesIO(data), width, len(data) + 1)
    assert _table(WholeRecords(Trickle(data, trickle)), width, block) == whole


BYTES = st.binary(max_size=200).map(lambda b: b.replace(b"x", b'"').replace(b"y", b"\r"))


@given(BYTES, st.integers(0, 80), st.lists(st.integers(1, 9), min_size=1, max_size=3))
@example(b"a\r", 5, [3])
@example(b'"a\n"\r\nb', 3, [1])
def test_reads_give_back_every_byte_and_each_block_holds_a_record_end(
    data: bytes, size: int, trickle: list[int]
) -> None:
    """What pyarrow needs: every block but the last holds the end of a record, so the
    record the block before left open ends in it."""
    stream = WholeRecords(Trickle(data, trickle))
    blocks = []
    while block := stream.read(size or 1):
        blocks.append(block)
    assert b"".join(blocks) == data
    ends, at = _ends(data), 0
    for block in blocks[:-1]:
        assert any(at < end <= at + len(block) for end in ends), (at, block)
        at += len(block)


@given(BYTES, st.booleans())
@example(b"a\r", False)
@example(b"a\r\n", False)
@example(b'"\n', True)
def test_holds_record_end_is_the_reference(data: bytes, odd: bool) -> None:
    ends = _ends(b'"' + data if odd else data)
    last = len(data) + odd  # a \r at the very end is not known to be alone
    assert holds_record_end(data, odd) == any(e < last or data[-1:] == b"\n" for e in ends)


def test_a_record_longer_than_the_limit_is_handed_over_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_RECORD without a record end (an unclosed quote): the bytes go to pyarrow,
    whose own error then speaks; memory stays bounded."""
    monkeypatch.setattr(csv_blocks, "MAX_RECORD", 64)
    data = b'"' + b"a\n" * 100
    stream = WholeRecords(io.BytesIO(data))
    first = stream.read(16)
    assert 64 <= len(first) < 64 + 16
    assert first + stream.read(-1) == data
