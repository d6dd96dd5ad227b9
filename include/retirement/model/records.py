"""What each phase adds to a dataset, as typed records, and the dataset as the ledger holds it.

Each dataset event of the chain carries only what its phase added: ``dataset_inventoried``
the inventory (which starts the dataset's record afresh), ``dataset_backed_up`` its
``backup``, ``dataset_backup_verified`` its ``verify``, ``dataset_delivered`` its
``deliveries``, ``dataset_deleting`` its ``deletion`` and ``dataset_deleted`` its
``certificate``. The ledger's ``datasets`` row keeps the record so far: :func:`fold` of the
dataset's events in chain order. Ledgers written before this (each event carrying the whole
record so far) fold to the same record, so they read and verify as they always did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from retirement.model.state import DatasetState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

_R = TypeVar("_R")

# The keys the phases after the inventory add to a dataset's record.
PHASE_KEYS = ("backup", "verify", "deliveries", "deletion", "certificate")


def fold(
    record: Mapping[str, Any] | None, state: DatasetState, added: Mapping[str, Any]
) -> dict[str, Any]:
    """The record after an event of ``state`` that added ``added``: an inventory starts it
    afresh, every later phase adds (or replaces) its own keys."""
    if state is DatasetState.INVENTORIED or record is None:
        return dict(added)
    return {**record, **added}


def fold_events(
    events: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[DatasetState, dict[str, Any]] | None:
    """The state and record that a dataset's events (kind, payload), in chain order, leave
    (events of other kinds are passed over); None if there is none."""
    state: DatasetState | None = None
    record: dict[str, Any] | None = None
    for kind, payload in events:
        now = DatasetState.of_event(kind)
        if now is not None:
            state, record = now, fold(record, now, payload)
    return None if state is None or record is None else (state, record)


class PhaseRecord(Protocol):
    """What one phase adds to a dataset: one key of its record."""

    key: ClassVar[str]

    def to_json(self) -> Any: ...


def added(record: PhaseRecord) -> dict[str, Any]:
    """The event payload that adds ``record``."""
    return {record.key: record.to_json()}


@dataclass(frozen=True)
class BackupRecord:
    """A backup version of the dataset: where its signed manifest is and what it holds."""

    key: ClassVar[str] = "backup"
    manifest: str
    rows: int
    row_digest: str
    ciphertext_sha256: str
    created_at: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BackupRecord:
        return cls(
            manifest=str(data["manifest"]),
            rows=int(data["rows"]),
            row_digest=str(data["row_digest"]),
            ciphertext_sha256=str(data["ciphertext_sha256"]),
            created_at=str(data.get("created_at", "")),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class VerifyRecord:
    """gate_backup's restore-verification of the backup (the verifier's summary)."""

    key: ClassVar[str] = "verify"
    summary: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.summary)

    @property
    def ciphertext_sha256(self) -> str | None:
        value = self.summary.get("ciphertext_sha256")
        return None if value is None else str(value)


@dataclass(frozen=True)
class DeliveriesRecord:
    """gate_transfer's verified deliveries of the backup (one receipt each)."""

    key: ClassVar[str] = "deliveries"
    receipts: tuple[Mapping[str, Any], ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.receipts]


@dataclass(frozen=True)
class DeletionRecord:
    """The deletion: when it started, under which approved request, and (once done) what
    was removed."""

    key: ClassVar[str] = "deletion"
    started_at: str
    request: str
    result: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"started_at": self.started_at, "request": self.request}
        if self.result is not None:
            out["result"] = dict(self.result)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeletionRecord:
        result = data.get("result")
        return cls(str(data.get("started_at", "")), str(data.get("request", "")), result)

    def finished(self, result: Mapping[str, Any]) -> DeletionRecord:
        return DeletionRecord(self.started_at, self.request, result)


@dataclass(frozen=True)
class CertificateRecord:
    """The certificate of sanitization issued for the dataset (its path)."""

    key: ClassVar[str] = "certificate"
    path: str

    def to_json(self) -> str:
        return self.path


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset of a run as the ledger's ``datasets`` row holds it (a summary of the
    chain, never read as proof: see deletion.proof)."""

    run_id: str
    dataset: str
    state: DatasetState
    data_class: str | None
    disposition: str | None
    rows: int | None
    bytes: int | None
    updated_at: str
    detail: Mapping[str, Any]  # the record so far (:func:`fold`), as stored

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> DatasetRecord:
        detail = row["detail"]
        return cls(
            run_id=row["run_id"],
            dataset=row["dataset"],
            state=DatasetState(row["state"]),
            data_class=row.get("data_class"),
            disposition=row.get("disposition"),
            rows=row.get("rows"),
            bytes=row.get("bytes"),
            updated_at=row.get("updated_at", ""),
            detail=json.loads(detail) if isinstance(detail, str) else dict(detail),
        )

    @property
    def inventory(self) -> dict[str, Any]:
        """What the inventory recorded (the record without what later phases added)."""
        return {k: v for k, v in self.detail.items() if k not in PHASE_KEYS}

    @property
    def kind(self) -> str:
        return str(self.detail.get("kind", "table"))

    @property
    def backup(self) -> BackupRecord | None:
        return self._part(BackupRecord.key, BackupRecord.from_json)

    @property
    def verify(self) -> VerifyRecord | None:
        return self._part(VerifyRecord.key, VerifyRecord)

    @property
    def deliveries(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.detail.get("deliveries") or ())

    @property
    def deletion(self) -> DeletionRecord | None:
        return self._part(DeletionRecord.key, DeletionRecord.from_json)

    def _part(self, key: str, parse: Callable[[Any], _R]) -> _R | None:
        """What phase ``key`` added, parsed; None before that phase."""
        data = self.detail.get(key)
        return parse(data) if data else None

    @property
    def certificate(self) -> str | None:
        value = self.detail.get("certificate")
        return None if value is None else str(value)
