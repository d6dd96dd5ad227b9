"""The hash chain's parts: an event and its hash, a verification report, and the chain's head
inside one locked transaction (``Chain``), through which every write of the ledger appends.

Every event carries the SHA-256 of the previous one, so editing, deleting, inserting or
reordering an event breaks the chain at a place ``Ledger.verify`` names.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from retirement.ledger.db import artifacts, canonical_json, datasets, events, lock_chain

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    """One audit event; ``hash`` covers every other field and the previous event's hash."""

    seq: int
    at: str
    run_id: str | None
    actor: str
    kind: str
    dataset: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def compute_hash(self) -> str:
        body = {
            "seq": self.seq,
            "at": self.at,
            "run_id": self.run_id,
            "actor": self.actor,
            "kind": self.kind,
            "dataset": self.dataset,
            "payload": self.payload,
            "prev": self.prev_hash,
        }
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()

    @classmethod
    def from_row(cls, row: Any) -> Event:
        return cls(
            seq=row.seq,
            at=row.at,
            run_id=row.run_id,
            actor=row.actor,
            kind=row.kind,
            dataset=row.dataset,
            payload=json.loads(row.payload),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def row_hash(row: Any) -> str:
    """``Event.compute_hash`` of a stored row, from its payload text as stored (which is
    already canonical JSON): the same bytes, without parsing the payload."""
    dump = _dump
    body = (
        f'{{"actor":{dump(row.actor)},"at":{dump(row.at)},"dataset":{dump(row.dataset)},'
        f'"kind":{dump(row.kind)},"payload":{row.payload},"prev":{dump(row.prev_hash)},'
        f'"run_id":{dump(row.run_id)},"seq":{int(row.seq)}}}'
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _dump(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class ChainReport:
    """What a successful verification saw: the number of events and the chain head."""

    events: int
    head: str


class WriteKey(NamedTuple):
    """What a queued write touches: the run, the dataset and the kind of its event."""

    run_id: str | None
    dataset: str | None
    kind: str
    location: str | None = None  # of an artifact


class Chain:
    """The chain's head inside one transaction that holds the chain lock; the events added
    are inserted together when the transaction ends."""

    def __init__(self, conn: Connection) -> None:
        lock_chain(conn)
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
        stored = json.loads(canonical_json(payload or {}))
        draft = Event(self.seq + 1, at, run_id, actor, kind, dataset, stored, self.hash)
        done = Event(**{**draft.__dict__, "hash": draft.compute_hash()})
        self._rows.append(
            {
                "seq": done.seq,
                "at": at,
                "run_id": run_id,
                "actor": actor,
                "kind": kind,
                "dataset": dataset,
                "payload": canonical_json(stored),
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
