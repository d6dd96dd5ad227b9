"""The hash chain's parts: an event and its hash, a verification report, and the chain's head
inside one locked transaction (``Chain``), through which every write of the ledger appends.

Every event carries the SHA-256 of the previous one, so editing, deleting, inserting or
reordering an event breaks the chain at a place ``Ledger.verify`` names.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from retirement.ledger.db import artifacts, datasets, events, lock_chain, read_v3_from
from retirement.ledger.encoding import JCS, encoding_of, event_line, line_hash, payload_text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

GENESIS = "0" * 64
_HEADER = ("seq", "at", "run_id", "actor", "kind", "dataset")  # an event's plain fields


def _header(source: Any) -> dict[str, Any]:
    """An event's plain fields read from an Event or a stored row (same names)."""
    return {name: getattr(source, name) for name in _HEADER}


@dataclass(frozen=True)
class Event:
    """One audit event; ``hash`` covers every other field and the previous event's hash,
    in the event's ``encoding`` (ledger.encoding: 3 for events written by this code)."""

    seq: int
    at: str
    run_id: str | None
    actor: str
    kind: str
    dataset: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""
    encoding: int = JCS

    def line(self) -> str:
        """The exact text the hash covers (one line of ledger.jsonl in a dossier)."""
        return event_line(
            **_header(self),
            payload_text=payload_text(self.payload, self.encoding),
            prev_hash=self.prev_hash,
            encoding=self.encoding,
        )

    def compute_hash(self) -> str:
        return line_hash(self.line(), self.prev_hash, self.encoding)

    @classmethod
    def from_row(cls, row: Any, encoding: int = JCS) -> Event:
        return cls(
            **_header(row),
            payload=json.loads(row.payload),
            prev_hash=row.prev_hash,
            hash=row.hash,
            encoding=encoding,
        )


def row_line(row: Any, encoding: int = JCS) -> str:
    """``Event.line`` of a stored row, from its payload text as stored (which is already
    canonical JSON of its encoding): the same bytes, without parsing the payload."""
    return event_line(
        **_header(row),
        payload_text=row.payload,
        prev_hash=row.prev_hash,
        encoding=encoding,
    )


def row_hash(row: Any, encoding: int = JCS) -> str:
    """``Event.compute_hash`` of a stored row (see row_line)."""
    return line_hash(row_line(row, encoding), row.prev_hash, encoding)


@dataclass(frozen=True)
class ChainReport:
    """What a successful verification saw: the number of events and the chain head, and
    the sequence number of the expected head when one was given."""

    events: int
    head: str
    head_at: int | None = None


class WriteKey(NamedTuple):
    """What a queued write touches: the run, the dataset and the kind of its event."""

    run_id: str | None
    dataset: str | None
    kind: str
    location: str | None = None  # of an artifact


class Chain:
    """The chain's head inside one transaction that holds the chain lock; the events added
    are inserted together when the transaction ends."""

    def __init__(self, conn: Connection, v3_from: int | None = None) -> None:
        lock_chain(conn)
        # Read under the lock: another process may have just upgraded the ledger.
        self.v3_from = v3_from if v3_from is not None else read_v3_from(conn)
        last = conn.execute(
            sa.select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
        ).first()
        self.conn = conn
        self.seq: int = last.seq if last else 0
        self.hash: str = last.hash if last else GENESIS
        self._rows: list[dict[str, Any]] = []
        self._datasets: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._artifacts: dict[tuple[str, str, str], dict[str, Any] | None] = {}

    def prefetch(self, keys: Iterable[WriteKey]) -> None:
        """Read the dataset and artifact rows that queued writes will compare against: a few
        queries for a whole queue instead of one per write."""
        names: dict[str, set[str]] = defaultdict(set)
        locations: dict[tuple[str, str], set[str]] = defaultdict(set)
        for k in keys:
            if k.run_id is None:
                continue
            if k.kind.startswith("dataset_") and k.dataset is not None:
                names[k.run_id].add(k.dataset)
            elif k.kind.startswith("artifact_") and k.location is not None:
                locations[(k.run_id, k.kind.removeprefix("artifact_"))].add(k.location)
        for run_id, wanted in names.items():
            for part in _parts(sorted(wanted)):
                self._datasets.update({(run_id, n): None for n in part})
                query = sa.select(datasets).where(
                    (datasets.c.run_id == run_id) & datasets.c.dataset.in_(part)
                )
                for row in self.conn.execute(query):
                    self._datasets[(run_id, row.dataset)] = dict(row._mapping)
        for (run_id, kind), wanted in locations.items():
            for part in _parts(sorted(wanted)):
                self._artifacts.update({(run_id, kind, loc): None for loc in part})
                query = sa.select(artifacts).where(
                    (artifacts.c.run_id == run_id)
                    & (artifacts.c.kind == kind)
                    & artifacts.c.location.in_(part)
                )
                for row in self.conn.execute(query):
                    self._artifacts[(run_id, kind, row.location)] = dict(row._mapping)

    def dataset_row(self, run_id: str, dataset: str) -> dict[str, Any] | None:
        key = (run_id, dataset)
        if key not in self._datasets:
            row = self.conn.execute(
                sa.select(datasets).where(
                    (datasets.c.run_id == run_id) & (datasets.c.dataset == dataset)
                )
            ).first()
            self._datasets[key] = dict(row._mapping) if row else None
        return self._datasets[key]

    def dataset_written(self, run_id: str, dataset: str, values: dict[str, Any]) -> None:
        self._datasets[(run_id, dataset)] = {
            **(self._datasets.get((run_id, dataset)) or {}),
            **values,
        }

    def artifact_row(self, run_id: str, kind: str, location: str) -> dict[str, Any] | None:
        key = (run_id, kind, location)
        if key not in self._artifacts:
            row = self.conn.execute(
                sa.select(artifacts).where(
                    (artifacts.c.run_id == run_id)
                    & (artifacts.c.kind == kind)
                    & (artifacts.c.location == location)
                )
            ).first()
            self._artifacts[key] = dict(row._mapping) if row else None
        return self._artifacts[key]

    def artifact_written(
        self, run_id: str, kind: str, location: str, values: dict[str, Any]
    ) -> None:
        self._artifacts[(run_id, kind, location)] = values

    def add(
        self,
        at: str,
        kind: str,
        actor: str,
        run_id: str | None,
        dataset: str | None,
        payload: dict[str, Any] | None,
    ) -> Event:
        # Round-trip through JSON so the hash covers exactly what is stored and read back.
        encoding = encoding_of(self.seq + 1, self.v3_from)
        stored = json.loads(payload_text(payload or {}, encoding))
        draft = Event(
            self.seq + 1, at, run_id, actor, kind, dataset, stored, self.hash, "", encoding
        )
        done = Event(**{**draft.__dict__, "hash": draft.compute_hash()})
        self._rows.append(
            {
                "seq": done.seq,
                "at": at,
                "run_id": run_id,
                "actor": actor,
                "kind": kind,
                "dataset": dataset,
                "payload": payload_text(stored, encoding),
                "prev_hash": done.prev_hash,
                "hash": done.hash,
            }
        )
        self.seq, self.hash = done.seq, done.hash
        return done

    def insert_events(self) -> None:
        if self._rows:
            self.conn.execute(events.insert(), self._rows)


def _parts(items: list[str], size: int = 500) -> Iterable[list[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))
