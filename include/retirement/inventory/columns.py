"""A dataset read as Arrow columns, batch by batch, with reading and detecting overlapping.

PostgreSQL tables come straight from ``COPY ... TO STDOUT (FORMAT csv)`` parsed by
pyarrow's CSV reader (:mod:`retirement.sources.pg_arrow`), Parquet files as their own Arrow
columns (any source that is a ``ColumnReader``): no Python object per cell. Other
sources hand rows, turned into one Arrow string array per column. Either way a reader
thread fills a small queue (two batches) while this thread runs the engine: pyarrow and
numpy release the GIL, so both cores work, and memory stays a few batches whatever the size.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

import pyarrow as pa

from retirement.inventory.engine import EngineScanner, to_strings
from retirement.inventory.rules import rules_for
from retirement.sources.base import BATCH_ROWS
from retirement.sources.capabilities import ColumnReader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from retirement.inventory.detect import ColumnScan, Detector
    from retirement.sources.base import DatasetRef, Source

_END = object()


def column_batches(
    source: Source, ref: DatasetRef, batch_rows: int, *, full: bool = True
) -> Iterator[list[pa.Array]]:
    """The dataset's batches, each as one Arrow string array per column: a full read from
    a source that reads columns (a ColumnReader: PostgreSQL's COPY, Parquet) comes as Arrow
    arrays; any other read row by row."""
    if full and isinstance(source, ColumnReader):
        arrays = source.arrow_batches(ref.id, batch_rows)
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


def as_strings(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An Arrow column as the strings the row path makes of it (``str`` of each value):
    text and integers are cast in C (the same text); other types, whose Arrow text differs
    from Python's (``1.0`` against ``1``, ``True`` against ``true``), go value by value."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
        return to_strings(array)
    return to_strings(array.to_pylist())


def prefetched(
    make: Callable[[], Iterator[list[pa.Array]]], depth: int = 2
) -> Iterator[list[pa.Array]]:
    """Run ``make()``'s iterator in a reader thread, ``depth`` batches ahead of the caller."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            it = make()
            try:
                for item in it:
                    if not put(item):
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 (handed to the consuming thread)
            put(exc)
            return
        put(_END)

    reader = threading.Thread(target=read, name="inventory-reader", daemon=True)
    reader.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


def scan_columns(
    source: Source,
    ref: DatasetRef,
    detectors: Mapping[str, Detector],
    ncols: int,
    sample_rows: int,
    *,
    full: bool,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[list[ColumnScan], list[ColumnScan], int]:
    """(full scan, sample scan, rows read) of every column; the sample is the first rows."""
    rules = rules_for(detectors)
    fulls = [EngineScanner(detectors, rules) for _ in range(ncols)]
    samples = [EngineScanner(detectors, rules) for _ in range(ncols)]
    rows = 0
    batch_rows = BATCH_ROWS if full else min(BATCH_ROWS, sample_rows)
    for arrays in prefetched(lambda: column_batches(source, ref, batch_rows, full=full)):
        n = len(arrays[0]) if arrays else 0
        in_sample = max(0, min(n, sample_rows - rows))
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
    sample_scans = [s.result() for s in samples]
    full_scans = [f.result() for f in fulls] if full else sample_scans
    return full_scans, sample_scans, rows
