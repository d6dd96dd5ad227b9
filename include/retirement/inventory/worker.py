"""The inventory's second scan process: the column engine over some of a dataset's columns.

The engine holds the GIL most of the time, so a thread does not give the scan a second core;
a process does. :mod:`retirement.inventory.columns` starts this module as
``sys.executable -m retirement.inventory.worker`` with :class:`ScanWorker` (a plain
subprocess, not multiprocessing: Airflow's Celery workers run tasks in daemonic processes,
which multiprocessing refuses to give children) and talks over its standard streams:

1. in: one line of JSON, ``{"protocol": 1, "detectors": [...], "sample_rows": n}``: the
   detectors by definition (:func:`describe`; a plan's own detectors are rebuilt from their
   pattern and validator name), and how many of the rows still to come are the sample;
2. out: ``{"ready": 1}`` once the detectors are built;
3. in: an Arrow IPC stream of record batches, the worker's columns of each batch as read,
   until the end of the stream;
4. out: one line of JSON, ``{"batches", "rows", "full", "sample"}``: what it read, and a
   :class:`~retirement.inventory.detect.ColumnScan` per column (full scan and sample).

Its standard error goes to a temporary file, quoted in the error when it fails. The pipe's
back-pressure keeps a couple of batches in flight, whatever the dataset's size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import site
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

import retirement
from retirement.errors import ScanWorkerFailed
from retirement.inventory.worker_protocol import (
    parse_answer,
    rebuild,
    scan_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from retirement.inventory.detect import ColumnScan

log = logging.getLogger(__name__)

PROTOCOL = 1
READY_SECONDS = 60.0  # how long the worker may take to start (import, build its detectors)
_QUEUE_DEPTH = 2
EXIT_SECONDS = 2.0  # how long a worker whose pipe broke is given to report how it ended
_END = object()


# ---------------------------------------------------------------------- the parent's side


class ScanWorker:
    """The parent's handle on one worker process: :meth:`start`, wait until :meth:`ready`,
    :meth:`send` each batch's columns, :meth:`finish` for the results; :meth:`close` (or
    leaving the ``with`` block) kills and reaps it whatever happened."""

    # The worker's command line (tests put a stand-in here).
    command: ClassVar[tuple[str, ...]] = (sys.executable, "-m", "retirement.inventory.worker")

    def __init__(
        self, proc: subprocess.Popen[bytes], stderr: IO[bytes], names: Sequence[str]
    ) -> None:
        if proc.stdin is None or proc.stdout is None:
            raise ScanWorkerFailed("inventory scan worker: started without pipes to talk over")
        self._proc = proc
        self._stdin: IO[bytes] = proc.stdin
        self._stdout: IO[bytes] = proc.stdout
        self._stderr = stderr
        self._names = list(names)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.batches = 0
        self.rows = 0
        self.ncols = 0

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    def start(cls, described: list[dict[str, Any]], sample_rows: int) -> ScanWorker | None:
        """A worker that was sent its detectors, or None (logged) when none can start."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        env = dict(os.environ)
        # The worker imports this very copy of the library, wherever it was imported from
        # (a folder on PYTHONPATH or sys.path; site-packages itself is never put first).
        here = str(Path(retirement.__file__).resolve().parents[1])
        if here not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
            env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
        command = list(cls.command)
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        except OSError as exc:
            stderr.close()
            log.warning("inventory scan worker cannot start (%s): scanning in one process", exc)
            return None
        worker = cls(proc, stderr, [d["key"] for d in described])
        header = {"protocol": PROTOCOL, "detectors": described, "sample_rows": sample_rows}
        try:
            worker._stdin.write(json.dumps(header).encode() + b"\n")
            worker._stdin.flush()
        except OSError as exc:
            log.warning("inventory scan worker: %s", worker._why(f"exited at once ({exc})"))
            worker.close()
            return None
        log.info("inventory scan worker %d started", proc.pid)
        return worker

    def started(self, timeout: float) -> bool:
        """The worker has answered (ready or not: :meth:`ready` reads the answer) or exited,
        within ``timeout`` seconds."""
        answered, _, _ = select.select([self._stdout], [], [], timeout)
        return bool(answered) or self._proc.poll() is not None

    def ready(self, timeout: float = READY_SECONDS) -> bool:
        """True once the worker said it is ready; False (logged, worker closed) when it
        exited or said anything else, or did not answer within ``timeout`` seconds."""
        answer = b""
        ready, _, _ = select.select([self._stdout], [], [], timeout)
        if ready:
            answer = self._stdout.readline()
        if answer.strip() == json.dumps({"ready": PROTOCOL}).encode():
            return True
        said = f"answered {answer[:200]!r}" if answer else "did not answer"
        log.warning("inventory scan worker: %s; scanning in one process", self._why(said))
        self.close()
        return False

    def send(self, columns: list[pa.Array]) -> None:
        """Hand the worker its columns of the next batch (returns once queued: the writer
        thread feeds the pipe while the caller scans its own columns)."""
        self._start_writer(columns)
        batch = pa.RecordBatch.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
        self._put(batch)
        self.batches += 1
        self.rows += batch.num_rows

    def offer(self, columns: list[pa.Array]) -> bool:
        """Hand the worker this batch if it keeps up (its queue has room): True; else False
        at once, and the caller scans the batch itself."""
        self._raise_if_failed()
        self._start_writer(columns)
        batch = pa.RecordBatch.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            return False
        self.batches += 1
        self.rows += batch.num_rows
        return True

    def _start_writer(self, columns: list[pa.Array]) -> None:
        if self._writer is None:
            self.ncols = len(columns)
            schema = pa.schema([(f"c{i}", pa.string()) for i in range(len(columns))])
            self._writer = threading.Thread(
                target=self._write, args=(schema,), name="inventory-worker-writer", daemon=True
            )
            self._writer.start()

    def _put(self, item: object) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return

    def _write(self, schema: pa.Schema) -> None:
        try:
            with pa.ipc.new_stream(self._stdin, schema) as writer:
                while not self._stop.is_set():
                    try:
                        item = self._queue.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if item is _END:
                        break
                    writer.write_batch(item)
            self._stdin.close()
        except BaseException as exc:  # noqa: BLE001 (handed to the scanning thread)
            self._failure = exc

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            # its pipe broke: it is exiting; its status comes a moment after its pipes close
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=EXIT_SECONDS)
            raise ScanWorkerFailed(
                self._why(f"stopped reading ({self._failure})")
            ) from self._failure

    def finish(self) -> tuple[list[ColumnScan], list[ColumnScan]]:
        """(full scan, sample scan) of each column sent, once the worker has read them all;
        ScanWorkerFailed when it died or answered anything but that."""
        if self._writer is None:
            raise ScanWorkerFailed("inventory scan worker: finish() before any batch was sent")
        self._put(_END)
        self._writer.join()
        self._raise_if_failed()
        line = self._stdout.readline()
        code = self._proc.wait()
        if code != 0:
            raise ScanWorkerFailed(self._why("exited before its answer"))
        try:
            return parse_answer(line, self._names, self.batches, self.rows, self.ncols)
        except ValueError as exc:
            raise ScanWorkerFailed(f"inventory scan worker answered garbage: {exc}") from exc

    def _why(self, what: str) -> str:
        """``what`` happened to the worker, with its exit status and the end of its stderr."""
        code = self._proc.poll()
        try:
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            tail = ""
        status = (
            "still running"
            if code is None
            else f"killed by signal {-code}"
            if code < 0
            else f"exit status {code}"
        )
        said = f"; its stderr ends:\n{tail}" if tail else ""
        return f"inventory scan worker {self._proc.pid} {what} ({status}){said}"

    def close(self) -> None:
        """Kill the worker if it still runs, and reap it (no zombie, no orphan)."""
        self._stop.set()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._writer is not None:
            self._writer.join()
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> ScanWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- the worker's side


def serve(stdin: IO[bytes], out: IO[bytes]) -> None:
    """Read the header and the batches from ``stdin``, write the answers to ``out``."""
    from retirement.formats.read_ahead import prefetched
    from retirement.inventory.engine import EngineScanner
    from retirement.inventory.rules import rules_for

    header = json.loads(stdin.readline())
    if header.get("protocol") != PROTOCOL:
        raise ValueError(f"protocol {header.get('protocol')!r}, expected {PROTOCOL}")
    detectors = rebuild(header["detectors"])
    sample_rows = int(header["sample_rows"])
    rules = rules_for(detectors)
    out.write(json.dumps({"ready": PROTOCOL}).encode() + b"\n")
    out.flush()
    reader = pa.ipc.open_stream(stdin)
    ncols = len(reader.schema)
    fulls = [EngineScanner(detectors, rules) for _ in range(ncols)]
    samples = [EngineScanner(detectors, rules) for _ in range(ncols)]
    rows = batches = 0
    for columns in prefetched(lambda: (b.columns for b in reader)):
        n = len(columns[0]) if columns else 0
        in_sample = max(0, min(n, sample_rows - rows))
        for i, column in enumerate(columns):
            if in_sample:
                samples[i].feed(column.slice(0, in_sample))
            fulls[i].feed(column)
        rows += n
        batches += 1
    answer = {
        "batches": batches,
        "rows": rows,
        "full": [scan_json(f.result()) for f in fulls],
        "sample": [scan_json(s.result()) for s in samples],
    }
    out.write(json.dumps(answer).encode() + b"\n")
    out.flush()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr: standard output carries the answers
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
