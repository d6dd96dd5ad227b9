"""JSON-lines files read as Arrow columns (sources/jsonl_arrow.py) give the row path's
strings cell for cell, its column list, and its errors."""

from __future__ import annotations

import io
import json
from typing import IO, TYPE_CHECKING

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.errors import SourceError
from retirement.inventory.columns import column_batches
from retirement.sources import jsonl_arrow
from retirement.sources.files import FileSource
from retirement.sources.formats import jsonl_row_keys

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.text(alphabet='a1 "\\\n\t\r王\u2028\x00', max_size=6),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(float),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from("xy"), st.integers(0, 3), max_size=2),
)
KEYS = st.sampled_from(["id", "name", "remark", "名字", "a b", ""])


def _outcome(read: Callable[[], object]) -> object:
    """What ``read`` returns, or its error. Bytes that are not UTF-8 are an error for both;
    the row path's message says where its decoder's buffer stood, the columnar path's names
    the line, so those two are compared as the same error."""
    try:
        return read()
    except SourceError as exc:
        if "codec can't decode" in str(exc) or "not UTF-8" in str(exc):
            return "SourceError: not UTF-8"
        return f"SourceError: {exc}"


def _strings(
    source: FileSource, name: str, *, full: bool, named: bool = False
) -> list[list[str | None]]:
    """Every column's strings; ``named``: the columns handed over as ``schema`` gave them
    (as a scan does), else read by the source."""
    (ref,) = [r for r in source.datasets() if r.name == name]
    schema = source.schema(ref.id)
    out: list[list[str | None]] = [[] for _ in schema]
    columns = [c.name for c in schema] if named else None
    for batch in column_batches(source, ref, 3, full=full, columns=columns):
        for i, column in enumerate(batch):
            assert column.type == pa.string()
            out[i].extend(column.to_pylist())
    return out


def _assert_same(root: Path, name: str) -> None:
    """The same column list and strings as the row path, or the same error."""
    data = (root / name).read_bytes()
    where = f"source files: {name}"
    keys = _outcome(lambda: jsonl_row_keys(io.BytesIO(data), where))
    assert _outcome(lambda: jsonl_arrow.jsonl_keys(io.BytesIO(data), where)) == keys
    with FileSource("files", root) as source:
        rows = _outcome(lambda: _strings(source, name, full=False))
        assert _outcome(lambda: _strings(source, name, full=True)) == rows
        assert _outcome(lambda: _strings(source, name, full=True, named=True)) == rows


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few lines, so that a file is read in several (some by pyarrow, some
    line by line)."""
    monkeypatch.setattr(jsonl_arrow, "BLOCK_BYTES", 64)


@SETTINGS
@given(
    st.lists(st.dictionaries(KEYS, VALUES, max_size=4), max_size=12),
    st.booleans(),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from([b"", b"\xef\xbb\xbf"]),
    st.booleans(),
)
def test_json_lines_columns_are_the_rows_strings(
    tmp_path: Path,
    small_blocks: None,
    objects: list[dict[str, object]],
    ascii_only: bool,
    newline: str,
    bom: bytes,
    blank_lines: bool,
) -> None:
    """Objects as json.dumps writes them (any key order, keys left out, strings with
    escapes, integers beyond 64 bits, fractions, nested values, booleans, NULLs)."""
    lines = [json.dumps(o, ensure_ascii=ascii_only) for o in objects]
    if blank_lines:
        lines = [x for line in lines for x in (line, "  ")]
    (tmp_path / "t.jsonl").write_bytes(bom + newline.join(lines).encode() + newline.encode())
    _assert_same(tmp_path, "t.jsonl")


@SETTINGS
@given(st.text(alphabet='{}[]":, ab1\\u\n\r王', max_size=40))
def test_json_lines_of_any_text_are_the_rows_or_its_error(
    tmp_path: Path, small_blocks: None, body: str
) -> None:
    (tmp_path / "f.jsonl").write_text('{"a": "x", "b": 1}\n' + body, encoding="utf-8")
    _assert_same(tmp_path, "f.jsonl")


TOKENS = ["{", "}", '"a"', '"b"', ":", "1", '"x"', ",", "\n", " ", "[", "]", "true", "null", "1.5"]


@SETTINGS
@given(
    st.lists(st.sampled_from(TOKENS), max_size=40), st.lists(st.sampled_from(TOKENS), max_size=40)
)
def test_json_lines_of_any_tokens_are_the_rows_or_its_error(
    tmp_path: Path, small_blocks: None, before: list[str], after: list[str]
) -> None:
    """JSON's own tokens in any order, around well-formed lines: objects over two lines, two
    on one line, stray braces (what a review found the character-level text rarely makes)."""
    body = "".join(before) + '\n{"a": 1, "b": "x"}\n{"a": 2}\n' + "".join(after)
    (tmp_path / "k.jsonl").write_text(body, encoding="utf-8")
    _assert_same(tmp_path, "k.jsonl")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1} {"a": 2}\n{"a": 3}\n',  # two objects on a line: the row path's error
        b'{"a": 1} {"a": 2}\n\n',  # and a blank line: as many rows as lines
        b'{"a": 1}\n{"a":\r2}\n',  # a carriage return alone ends a line for the row path
        b'{"a": 1}\n\n{"a": "x"}\n',  # two kinds in a column, a blank line
        b'{"a": 1}\r{"a": 2}\n',  # a carriage return alone ends a line for the row path
        b'{"a": 1, "a": 2}\n',  # a key twice
        b'{"a": "\\ud800"}\n',  # a lone surrogate
        b'{"a": "ok"}\n' * 7000 + b'{"a": "\xff"}\n',  # not UTF-8 after the first 64 KiB
        b'{"a": 1.10}\n{"a": 1e400}\n{"a": 12345678901234567890}\n',  # digits a double loses
        b'{"a": NaN}\n',
        b'{"a": 1}\n\xef\xbb\xbf{"a": 2}\n',  # a byte-order mark inside the file
        b"[1, 2]\n",
        b'{"a": {"b": [1, {"c": null}]}}\n',
        # found by an adversarial review: an object over two lines beside two on one line
        # (as many rows as lines), each an error of the row path
        b'{"a":\n1}{"b":2}\n',
        b'{"a":1}{"b":\n2}\n',
        b'{\n}{"b":2}\n',
        b'{"a":1}\n{"a":1}{"b":\n2}\n{"c":3}\n',
        b'{"a":1,\r\n"b":2}{"c":3}\n',
        b'{"a": {"x": 1}\n, "b": 2}\n',
        # pyarrow 26's JSON reader crashes the process on a block that starts with null
        b"null\n",
        b' null\n{"a": 1}\n',
        b'{"a": 1} null {"b": 2}\n',
        # a key that is not UTF-8 after the first 64 KiB (pyarrow does not check keys)
        b'{"a": "ok"}\n' * 7000 + b'{"k\xff": 1}\n',
        b'{"a": "ok"}\n' * 7000 + b'{"k\xed\xa0\x80": 1}\n',
    ],
)
def test_json_lines_that_pyarrow_would_read_otherwise(
    tmp_path: Path, small_blocks: None, body: bytes
) -> None:
    (tmp_path / "f.jsonl").write_bytes(b'{"p": "pad", "q": true}\n' * 3 + body)
    _assert_same(tmp_path, "f.jsonl")


def test_a_plain_file_is_read_by_pyarrow(tmp_path: Path) -> None:
    """Text, integers, booleans and NULLs come as pyarrow's typed arrays (the row path would
    give strings); the inventory makes the row path's strings of them."""
    lines = [json.dumps({"id": i, "ok": i % 2 == 0, "name": f"王{i}", "x": None}) for i in range(9)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        batches = source.arrow_batches(ref.id, 10)
        assert batches is not None
        (batch,) = list(batches)
        assert [a.type for a in batch] == [pa.int64(), pa.bool_(), pa.string(), pa.null()]
        (strings,) = list(column_batches(source, ref, 10))
        assert strings[1].to_pylist()[:2] == ["True", "False"]
    _assert_same(tmp_path, "p.jsonl")


@pytest.mark.parametrize("body", [b"", b"\xef", b"\xef\xbb", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"])
def test_a_file_of_nothing_or_part_of_a_byte_order_mark(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "n.jsonl").write_bytes(body)
    _assert_same(tmp_path, "n.jsonl")


@pytest.mark.parametrize("body", [b"null\n", b" null", b'null\n{"a": 1}\n'])
def test_a_file_that_starts_with_null(tmp_path: Path, body: bytes) -> None:
    """pyarrow 26's JSON reader crashes the process (a segmentation fault) on a block that
    starts with ``null``: such a block is never handed to it (found by the token test)."""
    (tmp_path / "z.jsonl").write_bytes(body)
    _assert_same(tmp_path, "z.jsonl")


def test_a_line_not_utf8_is_named(tmp_path: Path) -> None:
    body = b'{"a": "ok"}\n' * 7000 + b'{"a": "\xff"}\n'
    with pytest.raises(SourceError, match=r"line 7001: not UTF-8 \(invalid start byte at byte 8"):
        jsonl_arrow.jsonl_keys(io.BytesIO(body), "w")


def test_a_gb18030_file_is_read_row_by_row(tmp_path: Path) -> None:
    (tmp_path / "g.jsonl").write_bytes('{"名": "王小明"}\n'.encode("gb18030"))
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        assert source.arrow_batches(ref.id, 10) is None
        assert [c.to_pylist() for c in next(column_batches(source, ref, 10))] == [["王小明"]]


def test_an_error_names_the_line_across_blocks(tmp_path: Path, small_blocks: None) -> None:
    body = '{"a": "x"}\n' * 20 + "\n" + '{"a": "y"}\r\n' * 5 + '{"a": "z"}\r' * 3
    body += '{"a": "x"}\n' * 10 + '{"a": oops}\n'
    (tmp_path / "e.jsonl").write_text(body, encoding="utf-8")
    with pytest.raises(SourceError, match=r"source files: e.jsonl: line 40: not JSON"):
        jsonl_arrow.jsonl_keys(io.BytesIO(body.encode()), "source files: e.jsonl")
    _assert_same(tmp_path, "e.jsonl")


def test_a_scan_reads_the_column_list_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan hands the schema's columns to the columnar read: the column list (a read of
    the whole file) is read once, by ``schema``."""
    from retirement.inventory.scan import scan_dataset
    from retirement.plan.policy import ClassificationPolicy

    lines = [json.dumps({"id": i, "mobile": f"1381234{i:04d}"}) for i in range(50)]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    calls: list[str] = []

    read_keys = jsonl_arrow.jsonl_keys

    def counted(raw: IO[bytes], where: str) -> list[str]:
        calls.append(where)
        return read_keys(raw, where)

    monkeypatch.setattr(jsonl_arrow, "jsonl_keys", counted)
    with FileSource("files", tmp_path) as source:
        (ref,) = source.datasets()
        report = scan_dataset(source, ref, ClassificationPolicy.default(), full=True)
    assert report.rows == 50
    assert [c.detected for c in report.columns] == [None, "cn_mobile"]
    assert len(calls) == 1
