"""The lines made from a row's values as JSON (sources.mysql_lines): what the server writes,
and a clear error for anything that is not the row's values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retirement.errors import SourceError
from retirement.sources.mysql_lines import Field, Lines

LINES = Lines(
    (
        Field("id", "IFNULL(CAST(`id` AS CHAR), '')", text=False),
        Field("doc", "`doc`", text=True, long=True),
    )
)


@given(st.text(), st.none() | st.text())
def test_a_line_is_the_formatted_field_and_the_quoted_text(number: str, text: str | None) -> None:
    made = LINES.joined(json.dumps([number, text]))
    quoted = "" if text is None else '"' + text.replace('"', '""') + '"'
    assert made == f"{number},{quoted}"


def test_the_columns_send_json_only_for_a_long_text_value_holding_a_quote() -> None:
    line, values = LINES.columns("LINE")
    assert values.startswith("IF((LENGTH(`doc`) >= 1024 AND CAST(`doc` AS BINARY) LIKE")
    assert "CAST(`doc` AS CHAR CHARACTER SET utf8mb4)" in values
    assert line == f"IF({values} IS NULL, LINE, NULL)"


def test_columns_that_cannot_hold_a_long_value_are_not_tested_on_the_server() -> None:
    import sqlalchemy as sa

    short = sa.Column("name", sa.String(255))
    assert not Field.of_text(short, "`name`").long
    assert Field.of_text(sa.Column("name", sa.String(256)), "`name`").long
    assert Field.of_text(sa.Column("doc", sa.Text()), "`doc`").long
    lines = Lines((Field.of_text(short, "`name`"),))
    assert lines.columns("LINE") == ("LINE", "NULL")


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ('{"id": "1"}', "not its values"),
        ('["1"]', "not its values"),
        ('["1", {"a": 1}]', r"column doc: the server sent \{'a': 1\}, not its text"),
        ('[null, "x"]', "column id: the server sent None"),
        (None, "larger than its max_allowed_packet"),
    ],
)
def test_anything_but_the_rows_values_is_an_error_naming_the_column(
    sent: str | None, error: str
) -> None:
    with pytest.raises(SourceError, match=error):
        LINES.joined(sent)
