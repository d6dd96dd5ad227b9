"""Reading the ledger: events in chain order, runs, dataset states and artifacts, each
query streamed. :class:`LedgerReads` is the read half of :class:`retirement.ledger.core.Ledger`:
every read first commits the writes it could see (``_read``, inside ``Ledger.batch``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.ledger.chain import GENESIS, Event
from retirement.ledger.db import (
    artifacts,
    datasets,
    events,
    plan_texts,
    read_v3_from,
    runs,
)
from retirement.ledger.encoding import encoding_of
from retirement.model.records import DatasetRecord
from retirement.model.state import RunState

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from sqlalchemy.engine import Connection, Engine


class LedgerReads:
    """The ledger's queries (mixed into Ledger, which owns the engine and the write queue)."""

    engine: Engine
    _read: Callable[..., None]  # Ledger's: commit the queued writes this read could see

    @staticmethod
    def _events(conn: Connection, query: Any) -> Iterator[Event]:
        """The events of ``query``, each with its hash encoding (ledger.encoding), selected
        by the ledger's ``chain_encoding_3_from`` as read in the same connection."""
        v3_from = read_v3_from(conn)
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield Event.from_row(row, encoding_of(row.seq, v3_from))

    def events(self, *, run_id: str | None = None, after: int | None = None) -> Iterator[Event]:
        """Events in chain order (of one run; after sequence number ``after``), streamed."""
        self._read()
        query = sa.select(events).order_by(events.c.seq)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        if after is not None:
            query = query.where(events.c.seq > after)
        with self.engine.connect() as conn:
            yield from self._events(conn, query)

    def events_of(
        self, run_id: str, kinds: tuple[str, ...], *, dataset: str | None = None
    ) -> list[Event]:
        """The run's events of these kinds (of one dataset if given), oldest first: one indexed
        query, not a scan of the run (steps over many datasets ask this per dataset)."""
        self._read(run_id, dataset, kinds)
        query = sa.select(events).where((events.c.run_id == run_id) & events.c.kind.in_(kinds))
        if dataset is not None:
            query = query.where(events.c.dataset == dataset)
        with self.engine.connect() as conn:
            return list(self._events(conn, query.order_by(events.c.seq)))

    def dataset_events(self, run_id: str, dataset: str) -> list[Event]:
        """One dataset's ``dataset_*`` events in chain order (what its datasets row folds)."""
        self._read(run_id, dataset)
        query = (
            sa.select(events)
            .where(
                (events.c.run_id == run_id)
                & (events.c.dataset == dataset)
                & events.c.kind.like("dataset\\_%", escape="\\")
            )
            .order_by(events.c.seq)
        )
        with self.engine.connect() as conn:
            return list(self._events(conn, query))

    def plan_text(self, sha256: str) -> str | None:
        """The text of the plan with this sha256 that a run was started with, or None."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(plan_texts.c.text).where(plan_texts.c.sha256 == sha256)
            ).first()
        return row.text if row else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self._one(sa.select(runs).where(runs.c.run_id == run_id))

    def _one(self, query: Any) -> dict[str, Any] | None:
        """The first row ``query`` selects, as a dict (None: no row)."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def run_state(self, run_id: str) -> RunState | None:
        """Where the run stands (None: no such run)."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs.c.state).where(runs.c.run_id == run_id)).first()
        return None if row is None else RunState(row.state)

    def is_preview(self, run_id: str) -> bool:
        """Whether the run was opened as a preview (``preview_started``): it only inventories
        and reports, and can never be approved, deleting or sealed."""
        from retirement.ledger.db import is_preview

        self._read()
        with self.engine.connect() as conn:
            return is_preview(conn, run_id)

    def runs_of(self, plan_name: str) -> list[str]:
        """The run ids of a plan, oldest first."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.run_id)
                .where(runs.c.plan_name == plan_name)
                .order_by(runs.c.started_at)
            ).all()
        return [r.run_id for r in rows]

    def recent_runs(
        self, limit: int = 50, *, plans: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest runs, newest first: of every plan, or only of ``plans``."""
        self._read()
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if plans is not None:
            query = query.where(runs.c.plan_name.in_(sorted(plans)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [dict(r._mapping) for r in rows]

    def plan_names(self) -> list[str]:
        """The names of the plans that have runs in this ledger."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs.c.plan_name).distinct()).all()
        return sorted(r.plan_name for r in rows)

    def runs_like(self, pattern: str) -> list[dict[str, Any]]:
        """Runs whose id matches a SQL LIKE ``pattern`` (``_`` one character, ``%`` any)."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.run_id.like(pattern))).all()
        return [dict(r._mapping) for r in rows]

    def event_kinds(self, run_id: str) -> set[str]:
        """The kinds of event a run has recorded (cheap: no payloads)."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.kind).where(events.c.run_id == run_id).distinct()
            ).all()
        return {r.kind for r in rows}

    def dataset_state(self, run_id: str, dataset: str) -> DatasetRecord | None:
        """One dataset's row (by primary key), or None."""
        self._read(run_id, dataset)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(datasets).where(
                    (datasets.c.run_id == run_id) & (datasets.c.dataset == dataset)
                )
            ).first()
        return DatasetRecord.from_row(row._mapping) if row else None

    def dataset_states(self, run_id: str) -> list[DatasetRecord]:
        return list(self.iter_dataset_states(run_id))

    def iter_dataset_states(self, run_id: str) -> Iterator[DatasetRecord]:
        """The run's datasets by name, read 1,000 at a time (a run may have 100,000)."""
        self._read()
        query = sa.select(datasets).where(datasets.c.run_id == run_id).order_by(datasets.c.dataset)
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=1000).execute(query):
                yield DatasetRecord.from_row(r._mapping)

    def artifacts(self, run_id: str, *, kind: str | None = None) -> list[dict[str, Any]]:
        self._read()
        query = sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.id)
        if kind is not None:
            query = query.where(artifacts.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def artifact(self, artifact_id: int) -> dict[str, Any] | None:
        """One artifact by its id, or None."""
        return self._one(sa.select(artifacts).where(artifacts.c.id == artifact_id))

    def first_seq(self, run_id: str) -> int | None:
        """The sequence number of the run's first event (None: it has none)."""
        self._read()
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(events.c.seq)).where(events.c.run_id == run_id)
            ).scalar()

    def encoding_3_from(self) -> int | None:
        """The first event hashed in encoding 3 (ledger.encoding); None: none is."""
        with self.engine.connect() as conn:
            return read_v3_from(conn)

    def head_link(self) -> tuple[int, str]:
        """The last event's sequence number and hash ((0, the genesis hash): none yet)."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
            ).first()
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS)

    def head(self) -> str:
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(events.c.hash).order_by(events.c.seq.desc()).limit(1)
            ).first()
        return row.hash if row else GENESIS
