"""A PostgreSQL table (read through COPY into Arrow) scanned with the worker process gives the
same report as in one process, a plan's own detector included; killing the worker mid-scan is
a clear error and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal

import psycopg
import pytest

from retirement.errors import ScanWorkerFailed
from retirement.inventory.scan import scan_dataset
from retirement.sources import pg_arrow
from retirement.sources.sql import SqlSource
from tests.support.scan_workers import HEADERS, POLICY, N, Seen, gone, record_workers, table_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_people(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        cols = ", ".join(f"{c} text" for c in HEADERS)
        conn.execute(f"CREATE TABLE people (pk serial PRIMARY KEY, {cols})")
        with conn.cursor().copy(f"COPY people ({', '.join(HEADERS)}) FROM STDIN") as copy:
            for row in table_rows():
                copy.write_row(row)
    return pg_url


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    monkeypatch.setattr(pg_arrow, "BLOCK_BYTES", 64 << 10)  # several batches of N rows
    return record_workers(monkeypatch)


def test_postgres_same_answer_with_the_worker(
    pg_people: str, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    with SqlSource("pg", pg_people) as source:
        (ref,) = source.datasets()
        monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
        alone = scan_dataset(source, ref, POLICY)
        assert seen.workers == []
        monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
        split = scan_dataset(source, ref, POLICY)
    assert len(seen.workers) == 1
    assert seen.sent >= 3
    assert seen.workers[0].rows < N  # the first batch was scanned before it started
    assert gone(seen.workers[0])
    assert split.rows == N
    assert json.dumps(split.to_json()) == json.dumps(alone.to_json())
    card = next(c for c in split.columns if c.name == "member_card")
    assert (card.detected, card.found) == ("vip_card", {"vip_card": N * 3 // 4})


def test_postgres_killed_worker(pg_people: str, seen: Seen) -> None:
    def kill(_n: int) -> None:
        if seen.sent == 2:
            os.kill(seen.workers[0].pid, signal.SIGKILL)

    with SqlSource("pg", pg_people) as source:
        (ref,) = source.datasets()
        with pytest.raises(ScanWorkerFailed, match="killed by signal 9"):
            scan_dataset(source, ref, POLICY, on_rows=kill)
    assert gone(seen.workers[0])
