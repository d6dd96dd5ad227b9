"""A dataset's events carry only what their phase added; its datasets row is what they fold
to. Hunted with random histories: after every step the chain and the tables verify and say
what the model says, a refused transition changes nothing, and any edit of a row is named."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from retirement.errors import LedgerError, TableEdited
from retirement.ledger.core import Ledger
from retirement.model.records import PHASE_KEYS
from retirement.model.state import DatasetState

NAMES = ("crm.a", "crm.b", "files.x#1")
KEY_OF = dict(zip(list(DatasetState)[1:], PHASE_KEYS, strict=True))  # state -> its phase key
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
steps = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(list(DatasetState)),
        values,
        st.booleans(),  # written as a ledger before format 2 did: the whole record so far
    ),
    min_size=1,
    max_size=25,
)


def _payload(
    state: DatasetState, value: Any, record: dict[str, Any] | None, whole: bool
) -> dict[str, Any]:
    if state is DatasetState.INVENTORIED:
        return {"rows": 3, "kind": "table", "columns": [value]}
    delta = {KEY_OF[state]: value}
    return {**(record or {}), **delta} if whole else delta


@settings(max_examples=40, deadline=None)
@given(history=steps, edit=st.sampled_from(["state", "detail", "delete", "insert"]))
def test_rows_are_what_the_events_fold_to(history: list[Any], edit: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'l.sqlite'}")
        try:
            _walk(ledger, history)
            _edited_rows_are_named(ledger, edit)
        finally:
            ledger.close()


def _walk(ledger: Ledger, history: list[Any]) -> None:
    model: dict[str, tuple[DatasetState, dict[str, Any]]] = {}
    for name, state, value, whole in history:
        now = model.get(name)
        payload = _payload(state, value, now[1] if now else None, whole)
        events = ledger.verify(tables=False).events
        if now is not None and not now[0].may_become(state):
            with pytest.raises(LedgerError, match="cannot become"):
                ledger.set_dataset_state("r", name, state, actor="t", payload=payload)
            assert ledger.verify().events == events  # refused: nothing written
        else:
            event = ledger.set_dataset_state("r", name, state, actor="t", payload=payload)
            given_ = json.loads(json.dumps(payload))
            # the model's own rule: an inventory starts afresh, a phase adds its keys
            expected = (
                given_ if state is DatasetState.INVENTORIED or not now else {**now[1], **given_}
            )
            if event is not None:
                assert event.payload == json.loads(json.dumps(payload))  # only what was given
                assert event.kind == state.event_kind
            else:
                assert now == (state, expected)  # nothing new: nothing written
            model[name] = (state, expected)
        ledger.verify()  # the chain and every row
        for n, (s, record) in model.items():
            row = ledger.dataset_state("r", n)
            assert row is not None
            assert (row.state, row.detail) == (s, record)


def _edited_rows_are_named(ledger: Ledger, edit: str) -> None:
    rows = ledger.dataset_states("r")
    with ledger.engine.begin() as conn:
        if edit == "insert" or not rows:
            conn.execute(
                sa.text(
                    "INSERT INTO datasets (run_id, dataset, state, detail, updated_at) "
                    "VALUES ('r', 'crm.zz', 'delivered', '{}', 'x')"
                )
            )
        elif edit == "delete":
            conn.execute(sa.text("DELETE FROM datasets WHERE dataset = :d"), {"d": rows[0].dataset})
        elif edit == "state":
            other = "deleted" if rows[0].state != "deleted" else "deleting"
            conn.execute(
                sa.text("UPDATE datasets SET state = :s WHERE dataset = :d"),
                {"s": other, "d": rows[0].dataset},
            )
        else:
            detail = json.dumps({**rows[0].detail, "backup": "edited"}, sort_keys=True)
            conn.execute(
                sa.text("UPDATE datasets SET detail = :t WHERE dataset = :d"),
                {"t": detail, "d": rows[0].dataset},
            )
    with pytest.raises(TableEdited):
        ledger.verify()


def test_a_ledger_written_before_format_2_reads_and_verifies(tmp_path: Path) -> None:
    """Format 1 ledgers carried the whole record in every event: they fold to the same rows;
    opened for writing, the ledger is recorded as the current format and goes on with phase
    records."""
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    Ledger.open(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("DROP TABLE ledger_meta"))  # as format 1 ledgers were
    ledger = Ledger.open(url, create=False)  # writes as format 1 did (encoding 2)
    inventory = {"rows": 2, "kind": "table"}
    backup = {**inventory, "backup": {"manifest": "m", "rows": 2}}
    ledger.set_dataset_state("r", "crm.a", "inventoried", actor="v1", payload=inventory)
    ledger.set_dataset_state("r", "crm.a", "backed_up", actor="v1", payload=backup)
    ledger.close()
    old = Ledger.open(url, create=False)
    old.verify()
    assert old.dataset_state("r", "crm.a").detail == backup
    old.close()
    ledger = Ledger.open(url)
    ledger.set_dataset_state(
        "r", "crm.a", "backup_verified", actor="v2", payload={"verify": {"rows": 2}}
    )
    assert list(ledger.events(run_id="r"))[-1].payload == {"verify": {"rows": 2}}
    assert ledger.dataset_state("r", "crm.a").detail == {**backup, "verify": {"rows": 2}}
    ledger.verify()
    with ledger.engine.connect() as conn:
        found = "SELECT value FROM ledger_meta WHERE key = 'format_version'"
        assert conn.execute(sa.text(found)).scalar() == "3"
    ledger.close()


@pytest.mark.parametrize(
    ("stored", "message"), [("4", "newer than"), ("two", "not a format version")]
)
def test_a_ledger_of_an_unknown_format_is_refused(
    tmp_path: Path, stored: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    Ledger.open(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.execute(
            sa.text("UPDATE ledger_meta SET value = :v WHERE key = 'format_version'"),
            {"v": stored},
        )
    for create in (True, False):
        with pytest.raises(LedgerError, match=message):
            Ledger.open(url, create=create)
