"""The full scan's worker process: the same answer as one process, column for column and
batch for batch, on row sources (SQLite, CSV) and a column source (Parquet), a plan's own
detector included; a worker that dies or answers garbage is a clear error or a fallback, and
is reaped however the scan ends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retirement.errors import ScanWorkerFailed, SourceError
from retirement.inventory import columns, worker
from retirement.inventory import worker_protocol as protocol
from retirement.inventory.detect import BUILTIN, ColumnScan, Detector, custom_detector
from retirement.inventory.scan import scan_dataset
from retirement.sources import csv_arrow
from retirement.sources.files import FileSource
from retirement.sources.sql import SqlSource
from tests.support.scan_workers import HEADERS, POLICY, N, Seen, gone, record_workers, table_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.sources.base import Source


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Iterator[Source]:
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE people ({', '.join(f'{c} TEXT' for c in HEADERS)})")
        conn.executemany(
            f"INSERT INTO people VALUES ({', '.join('?' * len(HEADERS))})", table_rows()
        )
    with SqlSource("s", f"sqlite:///{db}") as source:
        yield source


@pytest.fixture
def csv_source(tmp_path: Path) -> Iterator[Source]:
    import csv

    root = tmp_path / "files"
    root.mkdir()
    with (root / "people.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADERS)
        out.writerows(table_rows())
    with FileSource("files", root) as source:
        yield source


@pytest.fixture
def parquet_source(tmp_path: Path) -> Iterator[Source]:
    root = tmp_path / "parquet"
    root.mkdir()
    data = list(zip(*table_rows(), strict=True))
    table = pa.table(
        {
            h: pa.array([None if v is None else str(v) for v in col])
            for h, col in zip(HEADERS, data, strict=True)
        }
    )
    pq.write_table(table, root / "people.parquet", row_group_size=400)
    with FileSource("files", root) as source:
        yield source


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Batches of 500 rows, a worker from the first batch on, every worker recorded."""
    monkeypatch.setattr(columns, "BATCH_ROWS", 500)
    return record_workers(monkeypatch)


def _scan(source: Source, **kw: Any) -> Any:
    (ref,) = source.datasets()
    return scan_dataset(source, ref, POLICY, **kw)


def _both(
    source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen, *, rows_of: int = 500
) -> None:
    """``rows_of``: rows a batch (0: batches of the reader's own size, as CSV blocks)."""
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = _scan(source)
    assert seen.workers == []
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    split = _scan(source)
    assert len(seen.workers) == 1
    if rows_of:
        # every batch past the sample: the first three hold its 1,200 rows
        assert seen.sent == N // rows_of - 3
    else:
        assert seen.sent >= 2
    assert all(gone(w) for w in seen.workers)
    assert split == alone
    assert json.dumps(split.to_json()) == json.dumps(alone.to_json())  # key order too
    cols = {c.name: c for c in split.columns}
    assert cols["member_card"].detected == "vip_card"
    assert cols["member_card"].found == {"vip_card": N * 3 // 4}


def test_sqlite_same_answer_with_the_worker(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    _both(sqlite_source, monkeypatch, seen)


def test_csv_same_answer_with_the_worker(
    csv_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    """Read as columns (pyarrow's CSV blocks, made small here for several batches)."""
    monkeypatch.setattr(csv_arrow, "BLOCK_BYTES", 16 << 10)
    _both(csv_source, monkeypatch, seen, rows_of=0)


def test_csv_read_row_by_row_same_answer_with_the_worker(
    csv_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    monkeypatch.setattr(FileSource, "arrow_batches", lambda *_: None)
    _both(csv_source, monkeypatch, seen)


def test_parquet_same_answer_with_the_worker(
    parquet_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = _scan(parquet_source)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    split = _scan(parquet_source)
    assert seen.sent > 0
    assert json.dumps(split.to_json()) == json.dumps(alone.to_json())


def test_scan_columns_same_scans_and_sample(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    """The ColumnScans themselves, full and sample, detectors in the same order."""
    (ref,) = sqlite_source.datasets()
    detectors = POLICY.detectors_used()

    def scan() -> tuple[list[ColumnScan], list[ColumnScan], int]:
        return columns.scan_columns(
            sqlite_source, ref, detectors, len(HEADERS), POLICY.sample_rows, full=True
        )

    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = scan()
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    split = scan()
    assert seen.sent > 0
    assert split == alone
    for a, b in zip(split[0] + split[1], alone[0] + alone[1], strict=True):
        assert (list(a.hits), list(a.whole)) == (list(b.hits), list(b.whole))
    assert split[1][HEADERS.index("email")].non_empty == POLICY.sample_rows


def test_small_sampled_and_switched_off_scans_stay_in_process(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    _scan(sqlite_source, full=False)  # sampled
    monkeypatch.setattr(columns, "WORKER_MIN_BYTES", 1 << 30)
    _scan(sqlite_source)  # small
    monkeypatch.setattr(columns, "WORKER_MIN_BYTES", 1)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    _scan(sqlite_source)  # switched off
    assert seen.workers == []


def test_workers_default_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    assert not columns.scan_workers_wanted()
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    assert columns.scan_workers_wanted()
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "yes please")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert not columns.scan_workers_wanted()  # one core: no worker
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert columns.scan_workers_wanted()


def test_a_detector_without_a_definition_stays_in_process(
    sqlite_source: Source, seen: Seen
) -> None:
    """A detector the worker cannot rebuild (a check that is no named validator): no worker,
    the same answer."""
    plan_own = POLICY.detectors_used()
    assert protocol.rebuild(json.loads(json.dumps(protocol.describe(plan_own)))) == plan_own
    odd = {**BUILTIN, "odd": Detector("odd", True, custom_detector("x", "VIP")._pattern, bool)}  # noqa: SLF001
    assert protocol.describe(odd) is None
    (ref,) = sqlite_source.datasets()
    full, _, _ = columns.scan_columns(sqlite_source, ref, odd, len(HEADERS), 10, full=True)
    assert full[HEADERS.index("member_card")].hits["odd"] == N
    assert seen.workers == []


def test_batches_go_to_the_worker_only_while_it_keeps_up(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    """Without the tests' every-batch rule, the worker takes a batch when its queue has room
    and this process scans the rest: whichever batches it took, the same answer."""
    monkeypatch.setattr(columns, "WORKER_TAKES_ALL", False)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = _scan(sqlite_source)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    assert _scan(sqlite_source) == alone
    assert all(gone(w) for w in seen.workers)


def test_a_worker_that_does_not_keep_up_is_offered_no_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """offer() never waits: once the worker's queue is full it says no at once."""
    _stand_in(monkeypatch, READY + "import time; time.sleep(60)")
    w = worker.ScanWorker.start(protocol.describe(BUILTIN) or [], 0)
    assert w is not None
    with w:
        assert w.ready()
        big = [pa.array(["x" * 1000] * 1000), pa.array(["y" * 1000] * 1000)]
        taken = [w.offer(big) for _ in range(6)]
        assert taken[0]
        assert not taken[-1]
        assert w.batches == sum(taken)
    assert gone(w)


def test_a_killed_worker_is_a_clear_error_and_reaped(sqlite_source: Source, seen: Seen) -> None:
    def kill(_n: int) -> None:
        if seen.sent == 2:
            os.kill(seen.workers[0].pid, signal.SIGKILL)

    with pytest.raises(
        ScanWorkerFailed, match=r"inventory scan worker \d+ .*killed by signal 9"
    ) as caught:
        _scan(sqlite_source, on_rows=kill)
    assert isinstance(caught.value, SourceError)
    assert caught.value.retryable
    assert len(seen.workers) == 1
    assert gone(seen.workers[0])


def test_an_early_stop_reaps_the_worker(sqlite_source: Source, seen: Seen) -> None:
    class Stop(Exception):
        pass

    def stop(_n: int) -> None:
        if seen.sent == 2:
            raise Stop

    with pytest.raises(Stop):
        _scan(sqlite_source, on_rows=stop)
    assert len(seen.workers) == 1
    assert gone(seen.workers[0])


def _stand_in(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(worker.ScanWorker, "command", (sys.executable, "-c", code))


READY = "import sys; sys.stdin.readline(); print('{\"ready\": 1}', flush=True); "


@pytest.mark.parametrize(
    ("code", "message"),
    [
        pytest.param(READY + "sys.stdin.buffer.read(); print('hello')", "garbage", id="garbage"),
        pytest.param(
            READY + 'sys.stdin.buffer.read(); print(\'{"batches": 1, "rows": 500}\')',
            r"garbage: read 1 batches and 500 rows; 3 and 1500 were sent",
            id="missed-batches",
        ),
        pytest.param(
            READY + "sys.stdin.buffer.read(); sys.exit('out of memory')",
            r"exited before its answer \(exit status 1\); its stderr ends:\nout of memory",
            id="died",
        ),
        pytest.param(  # its pipe breaks before its exit status is known (seen in CI)
            READY + "import os, signal, time; os.close(0); time.sleep(0.5); "
            "os.kill(os.getpid(), signal.SIGKILL)",
            r"stopped reading \(.*Broken pipe\) \(killed by signal 9\)",
            id="killed-after-its-pipe-broke",
        ),
    ],
)
def test_a_worker_answering_garbage_is_a_clear_error(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen, code: str, message: str
) -> None:
    _stand_in(monkeypatch, code)
    with pytest.raises(ScanWorkerFailed, match=message):
        _scan(sqlite_source)
    assert all(gone(w) for w in seen.workers)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import sys; sys.exit(3)", id="exits-at-once"),
        pytest.param("import sys; sys.stdin.readline(); print('no')", id="not-ready"),
    ],
)
def test_a_worker_that_does_not_start_falls_back_to_one_process(
    sqlite_source: Source,
    monkeypatch: pytest.MonkeyPatch,
    seen: Seen,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = _scan(sqlite_source)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    _stand_in(monkeypatch, code)
    assert _scan(sqlite_source) == alone
    assert seen.sent == 0
    assert all(gone(w) for w in seen.workers)
    assert "scanning in one process" in caplog.text


def test_a_worker_that_cannot_be_run_falls_back(
    sqlite_source: Source, monkeypatch: pytest.MonkeyPatch, seen: Seen
) -> None:
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "0")
    alone = _scan(sqlite_source)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    monkeypatch.setattr(worker.ScanWorker, "command", ("/nonexistent/python",))
    assert _scan(sqlite_source) == alone
    assert seen.workers == []


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"[]",
        b'{"batches": 2, "rows": 10, "full": [], "sample": []}',
        b'{"batches": 2, "rows": 10, "full": [{"non_empty": 11, "hits": {}, "whole": {}}],'
        b' "sample": [{"non_empty": 1, "hits": {}, "whole": {}}]}',
        b'{"batches": 2, "rows": 10, "full": [{"non_empty": 5, "hits": {"nope": 1}, "whole": {}}],'
        b' "sample": [{"non_empty": 1, "hits": {}, "whole": {}}]}',
        b'{"batches": 2, "rows": 10, "full": [{"non_empty": 5, "hits": {"email": 1},'
        b' "whole": {"email": 2}}], "sample": [{"non_empty": 1, "hits": {}, "whole": {}}]}',
        b'{"batches": 2, "rows": 10, "full": [{"non_empty": true, "hits": {}, "whole": {}}],'
        b' "sample": [{"non_empty": 1, "hits": {}, "whole": {}}]}',
    ],
)
def test_answers_that_do_not_account_for_everything_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each its own message)
        protocol.parse_answer(line, ["email"], 2, 10, 1)


def test_a_whole_answer_is_read() -> None:
    line = (
        b'{"batches": 2, "rows": 10, "full": [{"non_empty": 5, "hits": {"email": 3},'
        b' "whole": {"email": 2}}], "sample": [{"non_empty": 1, "hits": {}, "whole": {}}]}'
    )
    full, sample = protocol.parse_answer(line, ["email"], 2, 10, 1)
    assert full == [ColumnScan(5, {"email": 3}, {"email": 2})]
    assert sample == [ColumnScan(1, {}, {})]


def test_a_worker_process_without_pipes_is_a_clear_error() -> None:
    import subprocess
    import tempfile

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        with (
            tempfile.TemporaryFile() as stderr,
            pytest.raises(ScanWorkerFailed, match="without pipes"),
        ):
            worker.ScanWorker(proc, stderr, ["cn_mobile"])
    finally:
        proc.wait()
