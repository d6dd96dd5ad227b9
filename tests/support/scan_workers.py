"""What the scan worker's tests share: a table with a plan's own detector and awkward cells,
and a record of the workers a scan started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from retirement.inventory import columns, worker
from retirement.plan.policy import ClassificationPolicy
from tests.pii_data import COLUMNS, rows

BASE = ClassificationPolicy.default()
POLICY = ClassificationPolicy.model_validate(
    {
        **BASE.model_dump(by_alias=True),
        "sample_rows": 1200,  # the sample goes on after the worker started (batches of 500)
        "custom_detectors": {"vip_card": {"pattern": r"VIP-(\d{16})", "validator": "luhn"}},
        "detectors": {**BASE.detectors, "vip_card": "core"},
    }
)
N = 3000
HEADERS = [*COLUMNS, "member_card", "odd"]


def table_rows(n: int = N) -> list[tuple[Any, ...]]:
    odd = [None, "", "  ", "line\nbreak 13812345678", "VIP-4111111111111111 and 1.2.3.4", "王伟"]
    return [
        (*row, f"VIP-{4111111111111111 if i % 4 else 4111111111111112}", odd[i % len(odd)])
        for i, row in enumerate(rows(n))
    ]


class Seen:
    """The workers a scan started and how many batches each was sent."""

    def __init__(self) -> None:
        self.workers: list[worker.ScanWorker] = []

    @property
    def sent(self) -> int:
        return sum(w.batches for w in self.workers)


def record_workers(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """A worker started after the first batch and given every batch past the sample, every
    worker started recorded."""
    monkeypatch.setattr(columns, "WORKER_MIN_BYTES", 1)
    monkeypatch.setattr(columns, "ENGINE_ROWS", 1)  # the reader's batches as they come
    monkeypatch.setattr(columns, "WORKER_TAKES_ALL", True)
    monkeypatch.setenv("RETIREMENT_SCAN_WORKERS", "1")
    record = Seen()
    start = worker.ScanWorker.start.__func__  # type: ignore[attr-defined]

    def started(cls: type[worker.ScanWorker], *args: Any) -> worker.ScanWorker | None:
        w = start(cls, *args)
        if w is not None:
            record.workers.append(w)
        return w

    monkeypatch.setattr(worker.ScanWorker, "start", classmethod(started))
    return record


def gone(w: worker.ScanWorker) -> bool:
    """The worker exited and was reaped (no zombie left in the process table)."""
    return w._proc.returncode is not None and not Path(f"/proc/{w.pid}").exists()  # noqa: SLF001
