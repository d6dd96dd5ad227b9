"""Whole runs of ASCII letters and digits found in numpy (inventory.tokens) are the runs a
regex with lookarounds finds, cell by cell, in any slice of a column."""

from __future__ import annotations

import re

import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from retirement.inventory.tokens import ALNUM, DIGITS, Run, find_runs

CELLS = st.lists(st.none() | st.text(alphabet="0123456789aZX -\n号é", max_size=14), max_size=25)


def _by_regex(values: list[str | None], width: int) -> list[tuple[int, str]]:
    run = re.compile(rf"(?<![0-9A-Za-z])[0-9A-Za-z]{{{width}}}(?![0-9A-Za-z])")
    return [(i, m.group()) for i, v in enumerate(values) if v for m in run.finditer(v)]


@given(CELLS, st.integers(1, 5), st.integers(0, 4))
@example(["ab", "cd", None, "", "ef"], 2, 0)  # runs end at every cell's edge
def test_runs_are_the_regexs_runs(values: list[str | None], width: int, cut: int) -> None:
    cells = pa.array(values, type=pa.string()).slice(min(cut, len(values)))
    rest = values[min(cut, len(values)) :]
    found = find_runs(cells, Run(ALNUM, ALNUM, width, width))
    got = list(zip(found.cell.tolist(), found.runs.to_pylist(), strict=True))
    assert got == _by_regex(rest, width)


CARD_CELLS = st.lists(st.none() | st.text(alphabet="0123456789 -a号", max_size=30), max_size=20)


@given(CARD_CELLS, st.integers(0, 3))
@example(["1234567890123", "-1234567890123", "1234567890123-", "12 3456789012345", ""], 0)
def test_card_runs_are_the_regexs_runs_in_cells_without_a_joined_group(
    values: list[str | None], cut: int
) -> None:
    """Digit runs of 12 to 19 with no digit or hyphen beside them; a cell where a space or
    a hyphen sits between two digits is flagged (and its runs left out)."""
    cells = pa.array(values, type=pa.string()).slice(min(cut, len(values)))
    rest = values[min(cut, len(values)) :]
    found = find_runs(cells, Run(DIGITS, DIGITS + b"-", 12, 19, joiner=b" -"))
    grouped = [bool(v) and re.search(r"[0-9][ -][0-9]", v) is not None for v in rest]
    assert found.joined.tolist() == grouped
    run = re.compile(r"(?<![0-9-])[0-9]{12,19}(?![0-9-])")
    expected = [
        (i, m.group()) for i, v in enumerate(rest) if v and not grouped[i] for m in run.finditer(v)
    ]
    assert list(zip(found.cell.tolist(), found.runs.to_pylist(), strict=True)) == expected
