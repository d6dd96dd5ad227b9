"""Whole runs of ASCII letters and digits found in numpy (inventory.tokens) are the runs a
regex with lookarounds finds, cell by cell, in any slice of a column."""

from __future__ import annotations

import re

import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from retirement.inventory.tokens import runs_of_width

CELLS = st.lists(st.none() | st.text(alphabet="0123456789aZX -\n号é", max_size=14), max_size=25)


def _by_regex(values: list[str | None], width: int) -> list[tuple[int, str]]:
    run = re.compile(rf"(?<![0-9A-Za-z])[0-9A-Za-z]{{{width}}}(?![0-9A-Za-z])")
    return [(i, m.group()) for i, v in enumerate(values) if v for m in run.finditer(v)]


@given(CELLS, st.integers(1, 5), st.integers(0, 4))
@example(["ab", "cd", None, "", "ef"], 2, 0)  # runs end at every cell's edge
def test_runs_are_the_regexs_runs(values: list[str | None], width: int, cut: int) -> None:
    cells = pa.array(values, type=pa.string()).slice(min(cut, len(values)))
    rest = values[min(cut, len(values)) :]
    cell, runs = runs_of_width(cells, width)
    assert list(zip(cell.tolist(), runs.to_pylist(), strict=True)) == _by_regex(rest, width)
