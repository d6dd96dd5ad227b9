"""A dataset read as Arrow columns, batch by batch, with reading and detecting overlapping,
a large full scan on two cores.

PostgreSQL tables come from ``COPY ... TO STDOUT (FORMAT csv)`` through psql, MariaDB tables
as CSV lines the server formats, CSV and TSV files, all parsed by pyarrow's CSV reader
(:mod:`retirement.sources.pg_arrow`, :mod:`~retirement.sources.mysql_arrow`,
:mod:`~retirement.sources.csv_arrow`), and Parquet files as their own Arrow columns (any
source that is a ``ColumnReader``): no Python object per cell. Other sources hand rows,
turned into one Arrow string array per column. Either way a reader thread fills a small
queue (two batches) while this thread runs the engine, and memory stays a few batches
whatever the size.

The engine holds the GIL most of the time, so a second thread would not give it a second
core. A full scan that has read ``WORKER_MIN_BYTES`` of columns and goes on starts a worker
process (:mod:`retirement.inventory.worker`) and scans on while it starts. Once it is ready,
every batch past the sample goes to it, sent over a pipe as Arrow IPC, whenever it keeps up
(its queue of two batches has room); otherwise this process scans the batch: both cores
stay busy, whichever is faster. At the end the worker's counts per column are added to this
process's: every cell is counted once, and the answer is the one-process answer exactly.
Small datasets, sampled scans, one column, a detector the worker cannot rebuild, or
``RETIREMENT_SCAN_WORKERS=0`` stay in one process (unset: a worker where the process may use
two cores). A worker that cannot start is logged and the scan goes on in one process
(nothing was handed to it yet); one that dies or answers anything but a whole result later
is a :class:`~retirement.errors.ScanWorkerFailed` (never a result short of batches). However
the scan ends, the worker is killed if still running and reaped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

import pyarrow as pa

from retirement.formats.read_ahead import prefetched
from retirement.inventory import worker
from retirement.inventory.engine import EngineScanner, to_strings
from retirement.inventory.rules import rules_for
from retirement.inventory.worker_protocol import describe, merged
from retirement.sources.base import BATCH_ROWS
from retirement.sources.capabilities import ColumnReader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from retirement.inventory.detect import ColumnScan, Detector
    from retirement.sources.base import DatasetRef, Source

log = logging.getLogger(__name__)

# A full scan starts its worker process once it has read this many bytes of Arrow columns
# and the dataset goes on (smaller datasets stay in one process: starting one costs about
# half a second of CPU); tests lower it.
WORKER_MIN_BYTES = 4 << 20
# Tests: once started, the worker takes every batch past the sample (waiting for it), so
# which batches it scans does not depend on timing.
WORKER_TAKES_ALL = False
WORKERS_ENV = "RETIREMENT_SCAN_WORKERS"
# A full scan hands the engine batches of at least this many rows (or ``ENGINE_BYTES`` of
# columns), joining the reader's smaller ones: the engine's cost per batch and column is a
# few dozen calls into pyarrow and numpy, which larger batches share out (a PostgreSQL COPY
# is parsed in blocks of 256 KiB, about 1,500 rows of a 10-column table; pyarrow reads up
# to 32 blocks ahead, so its blocks are not made larger instead).
ENGINE_ROWS = 16_000
ENGINE_BYTES = 16 << 20


def column_batches(
    source: Source,
    ref: DatasetRef,
    batch_rows: int,
    *,
    full: bool = True,
    columns: Sequence[str] | None = None,
) -> Iterator[list[pa.Array]]:
    """The dataset's batches, each as one Arrow string array per column: a full read from
    a source that reads columns (a ColumnReader: PostgreSQL's COPY, Parquet) comes as Arrow
    arrays; any other read row by row."""
    if full and isinstance(source, ColumnReader):
        arrays = source.arrow_batches(ref.id, batch_rows, columns)
        if arrays is not None:
            for batch in arrays:
                yield [as_strings(a) for a in batch]
            return
    ncols = len(source.schema(ref.id))
    for batch in source.batches(ref.id, batch_rows=batch_rows):
        if batch:
            yield [to_strings(list(values)) for values in zip(*batch, strict=True)]
        else:
            yield [to_strings([]) for _ in range(ncols)]


def regrouped(batches: Iterator[list[pa.Array]], rows: int, size: int) -> Iterator[list[pa.Array]]:
    """Consecutive batches joined into batches of at least ``rows`` rows or ``size`` bytes
    (the last one may be smaller); the same cells in the same order."""
    pending: list[list[pa.Array]] = []
    count = nbytes = 0
    for batch in batches:
        pending.append(batch)
        count += len(batch[0]) if batch else 0
        nbytes += sum(a.nbytes for a in batch)
        if count >= rows or nbytes >= size:
            yield _joined(pending)
            pending, count, nbytes = [], 0, 0
    if pending:
        yield _joined(pending)


def _joined(batches: list[list[pa.Array]]) -> list[pa.Array]:
    if len(batches) == 1:
        return batches[0]
    return [pa.concat_arrays(list(column)) for column in zip(*batches, strict=True)]


def as_strings(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow column as the strings the row path makes of it (``str`` of each value):
    text and integers are cast in C (the same text); other types, whose Arrow text differs
    from Python's (``1.0`` against ``1``, ``True`` against ``true``), go value by value."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
        return to_strings(array)
    return to_strings(array.to_pylist())


def scan_workers_wanted() -> bool:
    """Whether a large full scan may use a worker process: ``RETIREMENT_SCAN_WORKERS`` 0 or 1
    says so; unset, when this process may run on two cores or more."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1"
    if value:
        log.warning("%s=%r: expected 0 or 1; using the default", WORKERS_ENV, value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) >= 2


class _Handover:
    """The worker of one scan: started once the scan has read ``WORKER_MIN_BYTES``; once it
    is ready, each batch past the sample goes to it whenever it keeps up (its queue has
    room), else this thread scans it: both cores stay busy whatever either costs."""

    def __init__(self, detectors: Mapping[str, Detector], ncols: int, full: bool) -> None:
        wanted = full and ncols >= 2 and scan_workers_wanted()
        # its detectors (None: no worker for this scan)
        self.described = describe(detectors) if wanted else None
        self.seen = 0
        self.helper: worker.ScanWorker | None = None
        self.ready = False

    def take(self, arrays: list[pa.Array]) -> bool:
        """True when the worker took this batch (every column of it)."""
        if self.helper is None:
            return False
        if not self.ready:
            if not WORKER_TAKES_ALL and not self.helper.started(0):
                return False  # still starting: this thread scans on meanwhile
            if not self.helper.ready():
                self.helper, self.described = None, None
                return False
            self.ready = True
            log.info("inventory scan worker %d takes batches", self.helper.pid)
        if WORKER_TAKES_ALL:
            self.helper.send(arrays)
            return True
        return self.helper.offer(arrays)

    def after(self, arrays: list[pa.Array], stack: contextlib.ExitStack) -> None:
        """Start the worker once enough was read."""
        if self.helper is not None or self.described is None:
            return
        self.seen += sum(a.nbytes for a in arrays)
        if self.seen >= WORKER_MIN_BYTES:
            self.helper = worker.ScanWorker.start(self.described, 0)
            if self.helper is None:
                self.described = None
            else:
                stack.enter_context(self.helper)

    def finish(self) -> list[ColumnScan] | None:
        """The worker's full scan of each column over the batches it took (None: none)."""
        if self.helper is None or not self.helper.batches:
            return None
        return self.helper.finish()[0]


def scan_columns(
    source: Source,
    ref: DatasetRef,
    detectors: Mapping[str, Detector],
    ncols: int,
    sample_rows: int,
    *,
    full: bool,
    on_rows: Callable[[int], None] | None = None,
    names: Sequence[str] | None = None,
) -> tuple[list[ColumnScan], list[ColumnScan], int]:
    """(full scan, sample scan, rows read) of every column; the sample is the first rows.

    A full scan that has read ``WORKER_MIN_BYTES`` and goes on shares its batches with a
    worker process (module docstring)."""
    rules = rules_for(detectors)
    fulls = [EngineScanner(detectors, rules) for _ in range(ncols)]
    samples = [EngineScanner(detectors, rules) for _ in range(ncols)]
    rows = 0
    batch_rows = BATCH_ROWS if full else min(BATCH_ROWS, sample_rows)
    split = _Handover(detectors, ncols, full)
    with contextlib.ExitStack() as stack:

        def read() -> Iterator[list[pa.Array]]:
            batches = column_batches(source, ref, batch_rows, full=full, columns=names)
            return regrouped(batches, ENGINE_ROWS, ENGINE_BYTES) if full else batches

        for arrays in prefetched(read):
            n = len(arrays[0]) if arrays else 0
            in_sample = max(0, min(n, sample_rows - rows))
            if in_sample or not split.take(arrays):
                for i, column in enumerate(arrays):
                    if in_sample:
                        samples[i].feed(column.slice(0, in_sample))
                    if full:
                        fulls[i].feed(column)
            rows += n
            if on_rows:
                on_rows(n)
            if not full and rows >= sample_rows:
                break
            split.after(arrays, stack)
        theirs = split.finish()
    sample_scans = [s.result() for s in samples]
    full_scans = [f.result() for f in fulls] if full else sample_scans
    names = list(detectors)
    for i, scan in enumerate(theirs or ()):  # the batches the worker took
        full_scans[i] = merged(full_scans[i], scan, names)
    return full_scans, sample_scans, rows
