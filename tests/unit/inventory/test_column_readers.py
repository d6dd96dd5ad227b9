"""A source that reads columns (a ColumnReader) hands the inventory the same strings, cell for
cell, as reading it row by row: Parquet files of every common Arrow type, NULLs included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.errors import SourceError
from retirement.inventory.columns import column_batches, regrouped
from retirement.inventory.engine import to_strings
from retirement.sources.capabilities import ColumnReader
from retirement.sources.files import FileSource

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

COLUMNS = {
    "text": (st.text(max_size=12), pa.string()),
    "big": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "small": (st.integers(0, 255), pa.uint8()),
    "ratio": (st.floats(allow_nan=False, width=64), pa.float64()),
    "flag": (st.booleans(), pa.bool_()),
    "day": (st.dates(), pa.date32()),
    "at": (st.datetimes(timezones=st.just(dt.UTC)), pa.timestamp("us", tz="UTC")),
    "blob": (st.binary(max_size=8), pa.binary()),
    "money": (st.decimals(places=2, min_value=-(10**6), max_value=10**6), pa.decimal128(10, 2)),
}


def _rows_path(source: FileSource, name: str) -> list[list[str | None]]:
    (ref,) = [r for r in source.datasets() if r.name == name]
    out: list[list[str | None]] = [[] for _ in source.schema(ref.id)]
    for batch in column_batches(source, ref, 3, full=False):  # the row path
        for i, column in enumerate(batch):
            out[i].extend(column.to_pylist())
    return out


def _columns_path(source: FileSource, name: str) -> list[list[str | None]]:
    (ref,) = [r for r in source.datasets() if r.name == name]
    out: list[list[str | None]] = [[] for _ in source.schema(ref.id)]
    for batch in column_batches(source, ref, 3, full=True):
        for i, column in enumerate(batch):
            assert column.type == pa.string()
            out[i].extend(column.to_pylist())
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data(), st.integers(0, 9))
def test_parquet_columns_are_the_rows_strings(tmp_path: Path, data: st.DataObject, n: int) -> None:
    values = {
        name: data.draw(st.lists(st.one_of(st.none(), strategy), min_size=n, max_size=n))
        for name, (strategy, _) in COLUMNS.items()
    }
    values["money"] = [v if v is None else Decimal(v) for v in values["money"]]
    table = pa.table(
        {name: pa.array(values[name], type=kind) for name, (_, kind) in COLUMNS.items()}
    )
    root = tmp_path / f"t{n}-{abs(hash(str(values))) % 10**8}"
    root.mkdir()
    pq.write_table(table, root / "all.parquet", row_group_size=4)
    with FileSource("files", root) as source:
        assert isinstance(source, ColumnReader)
        assert _columns_path(source, "all.parquet") == _rows_path(source, "all.parquet")


def test_other_files_have_no_columnar_form(tmp_path: Path) -> None:
    """A one-column CSV (a blank line is a row to pyarrow, an error to csv.reader) is read
    row by row (JSON lines: test_jsonl_columns.py)."""
    (tmp_path / "a.csv").write_text("x\n1\n", encoding="utf-8")
    with FileSource("files", tmp_path) as source:
        for ref in source.datasets():
            assert source.arrow_batches(ref.id, 10) is None
            assert [c.to_pylist() for c in next(column_batches(source, ref, 10))] == [["1"]]


FIELD = st.text(alphabet='ab,"\n\r\t 王１é;', max_size=6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.data(),
    st.sampled_from(["csv", "tsv"]),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_csv_columns_are_the_rows_strings(
    tmp_path: Path, data: st.DataObject, fmt: str, encoding: str, newline: str
) -> None:
    """Written by csv.writer (quotes, delimiters and line breaks inside fields, empty
    fields, several encodings): the columnar path gives csv.reader's strings."""
    import csv
    import io

    ncols = data.draw(st.integers(2, 4))
    header = data.draw(
        st.lists(st.text("xyz_名", min_size=1, max_size=3), min_size=ncols, max_size=ncols)
    )
    rows = data.draw(st.lists(st.lists(FIELD, min_size=ncols, max_size=ncols), max_size=12))
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    name = f"t.{fmt}"
    (tmp_path / name).write_bytes(out.getvalue().encode(encoding))
    with FileSource("files", tmp_path) as source:
        (ref,) = [r for r in source.datasets() if r.name == name]
        assert source.arrow_batches(ref.id, 3) is not None
        _assert_same(source, name)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.lists(st.text(alphabet='ab,"\n\r 王', max_size=90), min_size=2, max_size=2)),
    st.sampled_from(["utf-8", "gb18030"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_csv_fields_longer_than_a_block_are_the_rows_strings(
    tmp_path: Path, rows: list[list[str]], encoding: str, newline: str
) -> None:
    """Blocks of 16 bytes and fields of up to 90 characters with line breaks and quotes:
    a field runs over several of pyarrow's blocks (which failed the read: "straddling
    object") and the columns are still the row path's strings."""
    import csv
    import io
    from unittest import mock

    from retirement.sources import csv_arrow

    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows([["a", "b"], *rows])
    (tmp_path / "long.csv").write_bytes(out.getvalue().encode(encoding))
    with mock.patch.object(csv_arrow, "BLOCK_BYTES", 16), FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        assert source.arrow_batches(ref.id, 3) is not None  # the columnar path reads it
        _assert_same(source, "long.csv")


def _outcome(read: Callable[[], list[list[str | None]]]) -> object:
    try:
        return read()
    except SourceError as exc:
        return f"SourceError: {exc}"


def _assert_same(source: FileSource, name: str) -> None:
    """Both paths give the same strings, or the same error."""
    rows = _outcome(lambda: _rows_path(source, name))
    assert _outcome(lambda: _columns_path(source, name)) == rows


@given(st.text(alphabet='ab,"\n\r 王', max_size=30))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_csv_columns_of_any_text_are_the_rows_or_its_error(tmp_path: Path, body: str) -> None:
    """Any text after a two-column header: the same strings as the row path, or an error
    (the row path's where it has one)."""
    (tmp_path / "f.csv").write_text("a,b\n" + body, encoding="utf-8")
    with FileSource("files", tmp_path) as source:
        _assert_same(source, "f.csv")


def test_a_broken_parquet_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really PAR1")
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        batches = source.arrow_batches(ref.id, 10)
        assert batches is not None
        with pytest.raises(SourceError, match=r"source files: bad.parquet: cannot read as parquet"):
            list(batches)


def test_to_strings_of_a_cast_column_is_python_str_for_integers() -> None:
    assert to_strings(pa.array([2**63 - 1, None, -5])).to_pylist() == [str(2**63 - 1), None, "-5"]


@pytest.mark.parametrize("body", ["a,b\n1,2\n3\n", "a,b\n1,2\n4,5,6\n"])
def test_a_ragged_csv_row_is_named_not_cut(tmp_path: Path, body: str) -> None:
    """A row with a field too few or too many would leave cells unscanned: refused, named."""
    (tmp_path / "r.csv").write_text(body, encoding="utf-8")
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        with pytest.raises(SourceError, match=r"source files: r.csv: row 3 has [13] fields"):
            list(column_batches(source, ref, 10))


@given(
    st.lists(st.lists(st.text(max_size=5), max_size=9), max_size=12),
    st.integers(1, 20),
    st.integers(1, 400),
)
def test_regrouped_batches_hold_the_same_cells_in_order(
    sizes: list[list[str]], rows: int, size: int
) -> None:
    """The engine's batches are the reader's joined: every cell once, in order; a joined
    batch stops at the first reader batch that reaches ``rows`` rows or ``size`` bytes."""
    batches = [
        [pa.array(b, pa.string()), pa.array([s.upper() for s in b], pa.string())] for b in sizes
    ]
    joined = list(regrouped(iter(batches), rows, size))
    for column in (0, 1):
        cells = [v for b in joined for v in b[column].to_pylist()]
        assert cells == [v for b in batches for v in b[column].to_pylist()]
    want, count, nbytes, pending = [], 0, 0, False  # rows of each joined batch, by the rule
    for b in batches:
        count, nbytes, pending = count + len(b[0]), nbytes + sum(a.nbytes for a in b), True
        if count >= rows or nbytes >= size:
            want, count, nbytes, pending = [*want, count], 0, 0, False
    assert [len(g[0]) for g in joined] == [*want, *([count] if pending else [])]


def test_a_gb18030_file_with_bytes_it_cannot_hold_is_the_row_paths_error(
    tmp_path: Path,
) -> None:
    """The columnar path decodes GB18030 itself (to cut blocks at whole records): a byte
    sequence GB18030 has no character for is the row path's error, not an escaped
    UnicodeDecodeError."""
    rows = "a,b\n" + "客户,张三\n" * 10_000  # past the first 64 KiB, read to tell the encoding
    data = rows.encode("gb18030") + b"x,\x81\x20\xff\n" + b"y,z\n"
    (tmp_path / "bad.csv").write_bytes(data)
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        assert source.arrow_batches(ref.id, 3) is not None
        _assert_same(source, "bad.csv")
        with pytest.raises(SourceError, match="gb18030' codec can't decode byte 0x81"):
            _columns_path(source, "bad.csv")
