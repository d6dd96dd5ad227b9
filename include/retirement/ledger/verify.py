"""Verifying the ledger: the hash chain walked from its first event, and the datasets and
artifacts tables (the chain's mutable summary) checked against what the chain recorded.
Streams both (``yield_per``): memory stays flat on a ledger of millions of events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.errors import ChainBroken, TableEdited
from retirement.ledger.chain import GENESIS, ChainReport, row_hash
from retirement.ledger.db import artifacts, canonical_json, datasets, events

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def verify_chain(
    engine: Engine,
    *,
    expect_head: str | None = None,
    tables: bool = True,
    run_id: str | None = None,
) -> ChainReport:
    """Walk the ledger's chain from the first event; raise ChainBroken naming the first bad one.

    With ``tables`` (the default), every row of the datasets and artifacts tables (of
    ``run_id``, or of every run) must also be what its latest chained event wrote:
    TableEdited names the first that is not (those tables are the chain's mutable
    summary; proof is only ever read from the chain)."""
    expected_seq, prev, count = 1, GENESIS, 0
    written: dict[tuple[str, str], tuple[str, str]] = {}
    query = sa.select(events).order_by(events.c.seq)
    with engine.connect() as conn:
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
            if row_hash(row) != row.hash:
                raise ChainBroken(
                    row.seq,
                    f"its content does not match its hash (edited); "
                    f"kind={row.kind} dataset={row.dataset}",
                )
            prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    if tables:
        check_tables(engine, written, run_id)
    if expect_head is not None and prev != expect_head:
        raise ChainBroken(
            count,
            f"the chain ends at {prev} after {count} events, not at the "
            f"expected head {expect_head} (events were removed from the end "
            "or added after it)",
        )
    return ChainReport(events=count, head=prev)


def check_tables(
    engine: Engine, written: dict[tuple[str, str], tuple[str, str]], run_id: str | None
) -> None:
    """Every datasets and artifacts row equals what its latest event wrote."""
    dq = sa.select(datasets).order_by(datasets.c.run_id, datasets.c.dataset)
    aq = sa.select(artifacts).order_by(artifacts.c.id)
    if run_id is not None:
        dq = dq.where(datasets.c.run_id == run_id)
        aq = aq.where(artifacts.c.run_id == run_id)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=1000).execute(dq):
            got = (f"dataset_{row.state}", _digest(row.detail))
            want = written.pop((row.run_id, "d:" + row.dataset), None)
            if want != got:
                raise TableEdited(
                    f"the ledger's datasets row of {row.dataset} (run {row.run_id}) is not "
                    "what the chain recorded ("
                    f"{'state ' + want[0][8:] if want else 'no event'}, the row says "
                    f"{row.state}): the table was edited; nothing can be "
                    "deleted on it. Restore the ledger from a copy, or start a new run"
                )
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
    missing = [k for k in written if k[1].startswith("d:")]
    if missing:
        run, name = missing[0]
        raise TableEdited(
            f"the chain records dataset {name[2:]} of run {run}, but the datasets table "
            "has no row for it: the table was edited"
        )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remember(written: dict[tuple[str, str], tuple[str, str]], row: Any) -> None:
    """Keep, per dataset and per artifact, the kind and payload digest of its latest event
    (the payload column holds the canonical JSON the row tables are compared with)."""
    if row.kind.startswith("dataset_") and row.dataset is not None:
        written[(row.run_id, "d:" + row.dataset)] = (row.kind, _digest(row.payload))
    elif row.kind.startswith("artifact_"):
        location = json.loads(row.payload).get("location")
        key = (row.run_id, f"a:{row.kind.removeprefix('artifact_')}:{location}")
        written[key] = (row.kind, _digest(row.payload))
