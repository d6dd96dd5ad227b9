"""Verifying the ledger: the hash chain walked from its first event, and the datasets and
artifacts tables (the chain's mutable summary) checked against what the chain recorded.
Streams both (``yield_per``): memory stays flat on a ledger of millions of events."""

from __future__ import annotations

import json
from itertools import groupby
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy as sa

from retirement.errors import ChainBroken, TableEdited
from retirement.ledger.chain import GENESIS, ChainReport, row_hash
from retirement.ledger.db import artifacts, canonical_json, datasets, events, read_v3_from
from retirement.ledger.encoding import encoding_of
from retirement.model.records import fold_events

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def verify_chain(
    engine: Engine,
    *,
    expect_head: str | None = None,
    tables: bool = True,
    run_id: str | None = None,
) -> ChainReport:
    """Walk the ledger's chain from the first event; raise ChainBroken naming the first bad one.

    ``expect_head``: a head published earlier (head.json of a signed dossier) must be the
    hash of one of the chain's events: the chain up to it is the one published, events
    appended after it (the seal's own ``dossier_sealed`` event, later runs) are allowed and
    counted (``ChainReport.head_at``); a head no event has (a cut tail) is ChainBroken.

    With ``tables`` (the default), every row of the datasets and artifacts tables (of
    ``run_id``, or of every run) must also be what its chained events wrote (a dataset's
    row: what its events fold to; an artifact's: its latest event): TableEdited names the
    first that is not (those tables are the chain's mutable
    summary; proof is only ever read from the chain)."""
    expected_seq, prev, count = 1, GENESIS, 0
    head_at = 0 if expect_head == GENESIS else None  # where the expected head is
    written: dict[tuple[str, str], tuple[str, str]] = {}
    query = sa.select(events).order_by(events.c.seq)
    with engine.connect() as conn:
        v3_from = read_v3_from(conn)  # the encoding of each event is selected by it
        for row in conn.execution_options(yield_per=5000).execute(query):
            if tables and row.run_id is not None and (run_id is None or row.run_id == run_id):
                _remember(written, row)
            if row.seq != expected_seq:
                what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
                raise ChainBroken(
                    expected_seq if row.seq > expected_seq else row.seq,
                    f"event {expected_seq} is {what}; found event {row.seq} next",
                )
            if row.prev_hash != prev:
                raise ChainBroken(
                    row.seq,
                    "its prev_hash does not match the hash of event "
                    f"{row.seq - 1} (an event was inserted, deleted or reordered)",
                )
            if row_hash(row, encoding_of(row.seq, v3_from)) != row.hash:
                raise ChainBroken(
                    row.seq,
                    f"its content does not match its hash (edited); "
                    f"kind={row.kind} dataset={row.dataset}",
                )
            prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
            if row.hash == expect_head:
                head_at = row.seq
    if tables:
        check_tables(engine, written, run_id)
    if expect_head is not None and head_at is None:
        raise ChainBroken(
            count,
            f"the chain ends at {prev} after {count} events and does not pass through the "
            f"expected head {expect_head} (events were removed from the end, or it is "
            "not a head of this ledger)",
        )
    return ChainReport(events=count, head=prev, head_at=head_at)


def check_tables(
    engine: Engine, written: dict[tuple[str, str], tuple[str, str]], run_id: str | None
) -> None:
    """Every datasets row is what its chained events fold to (model.records.fold_events), and
    every artifacts row what its latest event wrote. One snapshot of both tables and the
    events (a consistent read while other tasks write)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        _check_datasets(conn, run_id)
        _check_artifacts(conn, written, run_id)


def _check_datasets(conn: Connection, run_id: str | None) -> None:
    """Walk the datasets rows and the dataset events, both ordered by (run, dataset), side
    by side: one dataset's events in memory at a time."""
    eq = (
        sa.select(events.c.run_id, events.c.dataset, events.c.kind, events.c.payload)
        .where(
            events.c.kind.like("dataset\\_%", escape="\\")
            & events.c.run_id.is_not(None)
            & events.c.dataset.is_not(None)
        )
        .order_by(events.c.run_id, events.c.dataset, events.c.seq)
    )
    dq = sa.select(datasets).order_by(datasets.c.run_id, datasets.c.dataset)
    if run_id is not None:
        eq, dq = eq.where(events.c.run_id == run_id), dq.where(datasets.c.run_id == run_id)
    stream = conn.execution_options(yield_per=1000)
    rows = iter(stream.execute(dq))
    for (run, name), group in groupby(stream.execute(eq), key=lambda e: (e.run_id, e.dataset)):
        folded = fold_events((e.kind, json.loads(e.payload)) for e in group)
        row = next(rows, None)
        if row is None or (row.run_id, row.dataset) != (run, name):
            _unpaired(conn, run, name, row)
        if folded is None or (folded[0].value, canonical_json(folded[1])) != (
            row.state,
            canonical_json(json.loads(row.detail)),  # rows before format 3: Python's JSON
        ):
            raise TableEdited(
                f"the ledger's datasets row of {name} (run {run}) is not what the chain "
                f"recorded ({'state ' + folded[0] if folded else 'no event'}, the row says "
                f"{row.state}): the table was edited; nothing can be deleted on it. Restore "
                "the ledger from a copy, or start a new run"
            )
    extra = next(rows, None)
    if extra is not None:
        _unpaired(conn, extra.run_id, extra.dataset, extra)


def _unpaired(conn: Connection, run: str, name: str, row: Any) -> NoReturn:
    """A dataset the chain records without a row, or a row the chain never recorded."""
    if row is not None:
        recorded = conn.execute(
            sa.select(events.c.seq)
            .where((events.c.run_id == row.run_id) & (events.c.dataset == row.dataset))
            .limit(1)
        ).first()
        if recorded is None:
            raise TableEdited(
                f"the ledger's datasets row of {row.dataset} (run {row.run_id}) is not what the "
                f"chain recorded (no event, the row says {row.state}): the table was edited"
            )
    raise TableEdited(
        f"the chain records dataset {name} of run {run}, but the datasets table has no row "
        "for it: the table was edited"
    )


def _check_artifacts(
    conn: Connection, written: dict[tuple[str, str], tuple[str, str]], run_id: str | None
) -> None:
    """Every artifacts row equals what its latest event wrote."""
    aq = sa.select(artifacts).order_by(artifacts.c.id)
    if run_id is not None:
        aq = aq.where(artifacts.c.run_id == run_id)
    for row in conn.execution_options(yield_per=1000).execute(aq):
        payload = {"location": row.location, "size": row.size, "sha256": row.sha256}
        detail = json.loads(row.detail)
        if detail:
            payload["detail"] = detail
        got = (f"artifact_{row.kind}", _digest(canonical_json(payload)))
        want = written.pop((row.run_id, f"a:{row.kind}:{row.location}"), None)
        if want != got:
            raise TableEdited(
                f"the ledger's artifacts row {row.id} ({row.kind} {row.location}, run "
                f"{row.run_id}) is not what the chain recorded: the table was edited"
            )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remember(written: dict[tuple[str, str], tuple[str, str]], row: Any) -> None:
    """Keep, per artifact, the kind and payload digest of its latest event (the payload
    column holds the canonical JSON the artifacts rows are compared with)."""
    if row.kind.startswith("artifact_"):
        location = json.loads(row.payload).get("location")
        key = (row.run_id, f"a:{row.kind.removeprefix('artifact_')}:{location}")
        written[key] = (row.kind, _digest(canonical_json(json.loads(row.payload))))
