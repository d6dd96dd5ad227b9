"""The ledger's hash chain: appends link up; any edit, deletion, insertion or reorder is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from retirement.errors import ChainBroken, LedgerError
from retirement.ledger.chain import GENESIS, Event
from retirement.ledger.core import Ledger
from retirement.ledger.db import events


class FixedClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", clock=FixedClock())
    led.start_run("run-1", plan_name="demo", plan_sha256="a" * 64, scenario="change", actor="test")
    for i in range(5):
        led.append("step", actor="tester", run_id="run-1", dataset=f"crm.t{i}", payload={"i": i})
    yield led
    led.close()


def _raw(ledger: Ledger, sql: str, **params: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_chain_links_every_event(ledger: Ledger) -> None:
    evs = list(ledger.events())
    assert [e.seq for e in evs] == [1, 2, 3, 4, 5, 6]
    assert evs[0].prev_hash == GENESIS
    for before, after in zip(evs, evs[1:], strict=False):
        assert after.prev_hash == before.hash
    report = ledger.verify()
    assert report.events == 6
    assert report.head == evs[-1].hash == ledger.head()


def test_hash_covers_every_field() -> None:
    base = Event(1, "2026-01-01T00:00:00+00:00", "r", "a", "k", "d", {"x": 1}, GENESIS)
    digest = base.compute_hash()
    for change in (
        {"at": "2026-01-01T00:00:01+00:00"},
        {"run_id": "r2"},
        {"actor": "b"},
        {"kind": "k2"},
        {"dataset": None},
        {"payload": {"x": 2}},
        {"prev_hash": "1" * 64},
        {"seq": 2},
    ):
        assert Event(**{**base.__dict__, **change}).compute_hash() != digest, change


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        pytest.param(
            "UPDATE events SET payload = '{\"i\":99}' WHERE seq = 4",
            4,
            "edited",
            id="edited-payload",
        ),
        pytest.param(
            "UPDATE events SET actor = 'mallory' WHERE seq = 2", 2, "edited", id="edited-actor"
        ),
        pytest.param("DELETE FROM events WHERE seq = 3", 3, "missing", id="deleted"),
        pytest.param(
            "UPDATE events SET seq = seq + 1 WHERE seq >= 4; "
            "INSERT INTO events VALUES (4, '2026-11-23T08:00:30+00:00', 'run-1', 'mallory', "
            "'step', NULL, '{}', (SELECT hash FROM events WHERE seq = 3), "
            "'f00d000000000000000000000000000000000000000000000000000000000000')",
            4,
            "edited",
            id="inserted",
        ),
    ],
)
def test_tampering_is_named(ledger: Ledger, tamper: str, seq: int, reason: str) -> None:
    with ledger.engine.begin() as conn:
        for statement in tamper.split("; "):
            if "seq = seq + 1" in statement:  # shift from the end so the primary key holds
                for s in (6, 5, 4):
                    conn.execute(
                        sa.text("UPDATE events SET seq = :n WHERE seq = :s"), {"n": s + 1, "s": s}
                    )
            else:
                conn.exec_driver_sql(statement)
    with pytest.raises(ChainBroken) as caught:
        ledger.verify()
    assert caught.value.seq == seq
    assert reason in str(caught.value)


def test_inserted_event_with_correct_own_hash_breaks_the_next_link(ledger: Ledger) -> None:
    """A forger who recomputes the inserted event's hash still breaks the following link."""
    evs = list(ledger.events())
    with ledger.engine.begin() as conn:
        for s in (6, 5, 4):
            conn.execute(sa.text("UPDATE events SET seq = :n WHERE seq = :s"), {"n": s + 1, "s": s})
        forged = Event(4, evs[2].at, "run-1", "mallory", "step", None, {}, evs[2].hash)
        forged = Event(**{**forged.__dict__, "hash": forged.compute_hash()})
        conn.execute(
            events.insert().values(
                seq=4,
                at=forged.at,
                run_id="run-1",
                actor="mallory",
                kind="step",
                dataset=None,
                payload="{}",
                prev_hash=forged.prev_hash,
                hash=forged.hash,
            )
        )
    with pytest.raises(ChainBroken) as caught:
        ledger.verify()
    assert caught.value.seq == 5
    assert "prev_hash" in str(caught.value)


def test_reordered_events_are_named(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET seq = 100 WHERE seq = 3"))
        conn.execute(sa.text("UPDATE events SET seq = 3 WHERE seq = 4"))
        conn.execute(sa.text("UPDATE events SET seq = 4 WHERE seq = 100"))
    with pytest.raises(ChainBroken) as caught:
        ledger.verify()
    assert caught.value.seq == 3
    assert "prev_hash" in str(caught.value)


def test_truncated_tail_is_caught_by_expected_head(ledger: Ledger) -> None:
    head = ledger.head()
    _raw(ledger, "DELETE FROM events WHERE seq = 6")
    assert ledger.verify().events == 5  # the chain alone cannot see a cut tail...
    with pytest.raises(ChainBroken, match="does not pass through the expected head"):
        ledger.verify(expect_head=head)  # ...a published head can


def test_a_published_head_is_a_prefix_of_the_chain(ledger: Ledger) -> None:
    """A dossier signs the head before seal appends its own event: the chain that goes on
    after the published head verifies against it; a head no event has does not."""
    published = ledger.head()
    ledger.append("dossier_sealed", actor="dossier", run_id="r", payload={"chain_head": published})
    report = ledger.verify(expect_head=published)
    assert (report.events, report.head_at) == (7, 6)
    assert ledger.verify(expect_head=ledger.head()).head_at == 7
    with pytest.raises(ChainBroken, match="does not pass through"):
        ledger.verify(expect_head="1" * 64)


def test_start_run_is_idempotent_and_a_run_keeps_the_plan_it_was_opened_with(
    ledger: Ledger,
) -> None:
    before = ledger.verify().events
    assert (
        ledger.start_run(
            "run-1", plan_name="demo", plan_sha256="a" * 64, scenario="change", actor="test"
        )
        is False
    )
    again = ledger.start_run(
        "run-1", plan_name="demo", plan_sha256="b" * 64, scenario="change", actor="test"
    )
    assert again is False
    assert ledger.run("run-1")["plan_sha256"] == "a" * 64
    assert ledger.verify().events == before


def test_dataset_state_and_artifact_commit_with_their_events(ledger: Ledger) -> None:
    ledger.set_dataset_state(
        "run-1",
        "crm.customers",
        "inventoried",
        actor="t",
        rows=10,
        data_class="sensitive",
        payload={"columns": 3},
    )
    ledger.set_dataset_state("run-1", "crm.customers", "backed_up", actor="t")
    (state,) = ledger.dataset_states("run-1")
    assert state.state == "backed_up"
    assert state.rows == 10
    first = ledger.add_artifact(
        "run-1",
        kind="backup",
        location="vault/a.age",
        size=5,
        sha256="c" * 64,
        actor="t",
        dataset="crm.customers",
    )
    again = ledger.add_artifact(
        "run-1",
        kind="backup",
        location="vault/a.age",
        size=5,
        sha256="c" * 64,
        actor="t",
        dataset="crm.customers",
    )
    assert first is not None
    assert again is None
    with pytest.raises(LedgerError, match="already recorded"):
        ledger.add_artifact(
            "run-1", kind="backup", location="vault/a.age", size=5, sha256="d" * 64, actor="t"
        )
    kinds = [e.kind for e in ledger.events(run_id="run-1")]
    assert kinds[-3:] == ["dataset_inventoried", "dataset_backed_up", "artifact_backup"]
    ledger.verify()


def test_dataset_states_stream_page_by_page_in_name_order(ledger: Ledger) -> None:
    names = [f"files.f{i:05d}" for i in range(2_345)]  # over two pages of 1,000
    with ledger.batch():
        for name in reversed(names):
            ledger.set_dataset_state("r", name, "inventoried", actor="t", payload={"n": name})
        states = ledger.iter_dataset_states("r")  # reads: the queued writes commit first
        first = next(states)
    assert first.dataset == names[0]
    rest = list(states)
    assert [s.dataset for s in rest] == names[1:]
    assert all(s.detail == {"n": s.dataset} for s in rest)
    assert ledger.dataset_states("r") == [first, *rest]


def test_unicode_payload_round_trips(ledger: Ledger) -> None:
    ev = ledger.append("note", actor="张伟", payload={"公司": "演示贸易", "n": 1.5})
    assert list(ledger.events())[-1] == ev
    ledger.verify()


def test_open_without_create_refuses_missing_or_foreign_databases(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger file"):
        Ledger.open(f"sqlite:///{tmp_path / 'absent.sqlite'}", create=False)
    assert not (tmp_path / "absent.sqlite").exists()
    other = tmp_path / "other.sqlite"
    sa.create_engine(f"sqlite:///{other}").connect().close()
    with pytest.raises(LedgerError, match="not a retirement ledger"):
        Ledger.open(f"sqlite:///{other}", create=False)


def _committed_kinds(ledger: Ledger) -> list[str]:
    """What another process sees: the events table read on a fresh connection."""
    other = Ledger(ledger.engine)
    return [e.kind for e in other.events(run_id="run-1")]


def _artifact(
    ledger: Ledger,
    location: str,
    digest: str = "c",
    *,
    kind: str = "backup",
    dataset: str | None = None,
) -> None:
    ledger.add_artifact(
        "run-1",
        kind=kind,
        location=location,
        size=1,
        sha256=digest * 64,
        actor="t",
        dataset=dataset,
    )


def test_batch_queues_writes_and_reads_its_own(ledger: Ledger) -> None:
    before = _committed_kinds(ledger)
    with ledger.batch(max_pending=100):
        assert ledger.set_dataset_state("run-1", "crm.a", "backed_up", actor="t") is None
        _artifact(ledger, "v/a", dataset="crm.a")
        ledger.set_dataset_state("run-1", "crm.b", "backed_up", actor="t")
        assert _committed_kinds(ledger) == before  # nothing committed yet
        assert ledger.dataset_state("run-1", "crm.c") is None  # another dataset: no commit
        assert _committed_kinds(ledger) == before
        assert ledger.dataset_state("run-1", "crm.a").state == "backed_up"  # commits
        assert _committed_kinds(ledger)[len(before) :] == [
            "dataset_backed_up",
            "artifact_backup",
            "dataset_backed_up",
        ]
        ledger.set_dataset_state("run-1", "crm.a", "backed_up", actor="t")  # same: no event
        ledger.append("note", actor="t", run_id="run-1")
    assert _committed_kinds(ledger)[len(before) :] == [
        "dataset_backed_up",
        "artifact_backup",
        "dataset_backed_up",
        "note",
    ]
    assert ledger.verify().events == len(list(ledger.events()))


def test_batch_commits_every_max_pending_and_when_the_block_raises(ledger: Ledger) -> None:
    before = len(_committed_kinds(ledger))
    seen: list[int] = []

    def four_then_fail() -> None:
        with ledger.batch(max_pending=3):
            for i in range(4):
                ledger.append("step", actor="t", run_id="run-1", dataset=f"crm.t{i}")
            seen.append(len(_committed_kinds(ledger)))
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        four_then_fail()
    assert seen == [before + 3]  # the first three committed together, the fourth queued
    assert len(_committed_kinds(ledger)) == before + 4  # what was queued happened
    ledger.verify()


def test_batch_flushes_before_a_run_state_so_the_chain_keeps_call_order(ledger: Ledger) -> None:
    with ledger.batch():
        ledger.append("before", actor="t", run_id="run-1")
        ledger.set_run_state("run-1", "failed", actor="t")
        ledger.append("after", actor="t", run_id="run-1")
    assert _committed_kinds(ledger)[-3:] == ["before", "run_failed", "after"]
    ledger.verify()


def test_a_refused_artifact_in_a_batch_fails_the_block(ledger: Ledger) -> None:
    _artifact(ledger, "v/a")
    with pytest.raises(LedgerError, match="already recorded"), ledger.batch():
        _artifact(ledger, "v/a", "d")
    ledger.verify()


def test_batch_commits_for_a_read_of_event_kinds_only_when_one_is_queued(ledger: Ledger) -> None:
    before = len(_committed_kinds(ledger))
    with ledger.batch():
        ledger.append("step", actor="t", run_id="run-1", dataset="crm.a")
        assert ledger.events_of("run-1", ("deletion_approved",)) == []
        assert len(_committed_kinds(ledger)) == before  # no such kind queued: no commit
        (step,) = [e for e in ledger.events_of("run-1", ("step",), dataset="crm.a") if e.seq > 6]
        assert step.kind == "step"
        assert len(_committed_kinds(ledger)) == before + 1


def test_one_commit_of_a_batch_sees_its_own_earlier_writes(ledger: Ledger) -> None:
    """Within one commit: a repeated state is still a no-op, a column set later still counts,
    and a second artifact at the same location with another digest is still refused."""
    before = len(_committed_kinds(ledger))
    with ledger.batch():
        ledger.set_dataset_state("run-1", "crm.x", "backed_up", actor="t")
        ledger.set_dataset_state("run-1", "crm.x", "backed_up", actor="t")  # no-op
        ledger.set_dataset_state("run-1", "crm.x", "backed_up", actor="t", rows=7)  # a change
        _artifact(ledger, "v/x", dataset="crm.x")
        _artifact(ledger, "v/x", dataset="crm.x")  # the same again: no-op
    assert _committed_kinds(ledger)[before:] == [
        "dataset_backed_up",
        "dataset_backed_up",
        "artifact_backup",
    ]
    assert ledger.dataset_state("run-1", "crm.x").rows == 7

    def same_location_two_digests() -> None:
        with ledger.batch():
            for digest in ("c", "d"):
                _artifact(ledger, "v/y", digest, kind="gate")

    with pytest.raises(LedgerError, match="already recorded"):
        same_location_two_digests()
    ledger.verify()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.one_of(st.none(), st.text(max_size=8)),
            st.dictionaries(
                st.text(max_size=5),
                st.one_of(
                    st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False),  # no JSON form
                    st.text(),
                    st.none(),
                ),
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_fast_hash_of_a_stored_row_is_the_event_hash(items) -> None:
    """verify() hashes the stored payload text directly; it must be the very hash that
    Event.compute_hash gives for every event, whatever its characters and values."""
    import tempfile
    from pathlib import Path

    from retirement.ledger.chain import row_hash
    from retirement.ledger.db import events

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(f"sqlite:///{Path(tmp) / 'l.sqlite'}")
        for kind, dataset, payload in items:
            ledger.append(
                kind, actor="a\u00e9\U0001f600", run_id="r", dataset=dataset, payload=payload
            )
        with ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(events)).all()
        for row in rows:
            assert row_hash(row) == Event.from_row(row).compute_hash() == row.hash
        assert ledger.verify().events == len(items)
        ledger.close()


@pytest.mark.parametrize(
    ("table", "edit"),
    [
        pytest.param("datasets", "UPDATE datasets SET state = 'delivered'", id="datasets-state"),
        pytest.param(
            "datasets", "UPDATE datasets SET detail = '{\"deliveries\":[]}'", id="datasets-detail"
        ),
        pytest.param(
            "artifacts",
            "UPDATE artifacts SET sha256 = '0' || substr(sha256, 2)",
            id="artifact-digest",
        ),
        pytest.param("datasets", "DELETE FROM datasets", id="datasets-row-gone"),
    ],
)
def test_ledger_verify_names_a_table_row_that_disagrees_with_the_chain(
    ledger: Ledger, table: str, edit: str
) -> None:
    """The chain still verifies after such an edit; the tables' check is what catches it."""
    from retirement.errors import TableEdited

    ledger.set_dataset_state("run-1", "crm.customers", "backed_up", actor="t", payload={"a": 1})
    ledger.add_artifact(
        "run-1", kind="backup", location="/v/x.age", size=3, sha256="a" * 64, actor="t"
    )
    ledger.verify()
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(edit)
    assert ledger.verify(tables=False).events  # the chain alone does not see it
    with pytest.raises(TableEdited, match=table):
        ledger.verify()
