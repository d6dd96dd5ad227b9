"""The ledger on a real PostgreSQL: parallel writers in several processes never fork the chain."""

from __future__ import annotations

import multiprocessing as mp
from contextlib import nullcontext
from pathlib import Path

import pytest
import sqlalchemy as sa

from retirement.errors import ChainBroken
from retirement.ledger.core import Ledger

pytestmark = pytest.mark.integration

WRITERS, EVENTS_EACH = 6, 40


def _writer(url: str, worker: int, start: mp.synchronize.Event, batched: bool) -> None:
    ledger = Ledger.open(url)
    start.wait()
    with ledger.batch(max_pending=7) if batched and worker % 2 else nullcontext():
        for i in range(EVENTS_EACH):
            if i % 10 == 0:
                state = ("inventoried", "backed_up", "backup_verified", "delivered")[i // 10]
                ledger.set_dataset_state("run", f"src.t{worker}", state, actor=f"w{worker}")
            else:
                ledger.append(
                    "step", actor=f"w{worker}", run_id="run", payload={"w": worker, "i": i}
                )
    ledger.close()


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "half-batched"])
def test_parallel_processes_keep_one_chain(pg_url: str, batched: bool) -> None:
    """Half the writers queue their writes (``Ledger.batch``) and commit 7 at a time."""
    Ledger.open(pg_url).close()  # create the schema once, before the race
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(pg_url, w, start, batched)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ledger = Ledger.open(pg_url, create=False)
    report = ledger.verify()
    assert report.events == WRITERS * EVENTS_EACH
    seqs = [e.seq for e in ledger.events()]
    assert seqs == list(range(1, WRITERS * EVENTS_EACH + 1))
    actors = {e.actor for e in ledger.events()}
    assert actors == {f"w{w}" for w in range(WRITERS)}
    ledger.close()


def test_edit_on_postgres_is_named(pg_url: str) -> None:
    ledger = Ledger.open(pg_url)
    for i in range(3):
        ledger.append("step", actor="t", payload={"i": i})
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET kind = 'other' WHERE seq = 2"))
    with pytest.raises(ChainBroken) as caught:
        ledger.verify()
    assert caught.value.seq == 2
    ledger.close()


def _opener(url: str, start: mp.synchronize.Event, errors: mp.Queue) -> None:
    start.wait()
    try:
        Ledger.open(url).close()
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"{exc.__class__.__name__}: {exc}")


@pytest.mark.parametrize("url_fixture", ["pg_url", "mysql_url", "sqlite"])
def test_processes_creating_a_new_ledger_at_once_all_open_it(
    url_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Found by the scale test under load: two tasks of a first run (plan_check and the
    retention DAG's scheduled run) opened an empty ledger database at the same moment and
    one failed creating its tables ("duplicate key value violates unique constraint")."""
    if url_fixture == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    else:
        url = request.getfixturevalue(url_fixture)
    ctx = mp.get_context("spawn")
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_opener, args=(url, start, errors)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == []
    ledger = Ledger.open(url, create=False)
    assert ledger.verify().events == 0
    ledger.close()
