"""The ledger: durable state of every run and an append-only, hash-chained audit log.

The single source of truth for what happened. SQLite by default, PostgreSQL by URL.

Every event carries the SHA-256 of the previous one, so editing, deleting, inserting or
reordering an event breaks the chain at a place :meth:`Ledger.verify` names. Appends are
serialized (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
PostgreSQL), so parallel tasks never fork the chain. State changes and the event that
records them commit in one transaction; inside :meth:`Ledger.batch`, a few hundred writes
commit in one (steps over thousands of datasets would otherwise spend most of their time
committing).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from retirement.errors import ChainBroken, LedgerError, TableEdited
from retirement.ledger.chain import GENESIS, Chain, ChainReport, Event, WriteKey, row_hash
from retirement.ledger.db import (
    artifacts,
    canonical_json,
    datasets,
    engine_for,
    events,
    events_by_dataset,
    events_by_run,
    metadata,
    plan_texts,
    require_existing_sqlite,
    runs,
    safe_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Runs, datasets, artifacts and the audit chain in one SQL database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._pending: list[tuple[WriteKey, Callable[[Chain], object]]] | None = None
        self._max_pending = 500

    @classmethod
    def open(
        cls, url: str, *, clock: Callable[[], datetime] = _utc_now, create: bool = True
    ) -> Ledger:
        """Open (and by default create) the ledger at a SQLAlchemy ``url``."""
        if not create:
            require_existing_sqlite(url)
        engine = engine_for(url)
        try:
            if create:
                metadata.create_all(engine)
                events_by_run.create(engine, checkfirst=True)  # ledgers made before them
                events_by_dataset.create(engine, checkfirst=True)
            else:
                with engine.connect() as conn:
                    missing = [t for t in ("events", "runs") if not sa.inspect(conn).has_table(t)]
                if missing:
                    raise LedgerError(
                        f"{safe_url(url)} is not a retirement ledger: no table {missing[0]}"
                    )
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open ledger {safe_url(url)}: {exc.__class__.__name__}: "
                f"{getattr(exc, 'orig', exc)}"
            ) from exc
        return cls(engine, clock=clock)

    def close(self) -> None:
        self.engine.dispose()

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    # ------------------------------------------------------------------ writing

    @contextmanager
    def batch(self, max_pending: int = 500) -> Iterator[None]:
        """Queue this block's writes and commit them together: one transaction (one chain
        lock, one multi-row insert of events) per ``max_pending`` writes instead of one each.

        A read that could see a queued write (a read of the whole run; a read of one dataset,
        or of some kinds of event, that has queued writes) commits the queue first, so code
        inside reads what it wrote. The queue is committed when the block ends, also when it
        raises (what was queued happened). Writes that must be durable before an irreversible
        step are followed by :meth:`flush`. Queued writes return None.
        """
        if self._pending is not None:  # nested: the outer block commits
            yield
            return
        self._pending, self._max_pending = [], max_pending
        try:
            yield
        finally:
            try:
                self.flush()
            finally:
                self._pending = None

    def flush(self) -> None:
        """Commit the writes queued by :meth:`batch` now (nothing to do outside one)."""
        if not self._pending:
            return
        queued = list(self._pending)
        self._pending.clear()
        with self._chain() as chain:
            chain.prefetch(key for key, _write in queued)
            for _key, write in queued:
                write(chain)

    @contextmanager
    def _chain(self) -> Iterator[Chain]:
        with self.engine.begin() as conn:
            chain = Chain(conn)
            yield chain
            chain.insert_events()

    def _write(self, key: WriteKey, write: Callable[[Chain], _T]) -> _T | None:
        if self._pending is None:
            with self._chain() as chain:
                return write(chain)
        self._pending.append((key, write))
        if len(self._pending) >= self._max_pending:
            self.flush()
        return None

    def _read(
        self,
        run_id: str | None = None,
        dataset: str | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> None:
        """Commit the queue if this read could see a queued write: always for a read of a
        whole run; for one dataset's state or some kinds of event, if one of them is queued."""
        if not self._pending:
            return
        if (dataset is None and kinds is None) or any(
            k.run_id == run_id
            and (dataset is None or k.dataset == dataset)
            and (kinds is None or k.kind in kinds)
            for k, _w in self._pending
        ):
            self.flush()

    def append(
        self,
        kind: str,
        *,
        actor: str,
        run_id: str | None = None,
        dataset: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event | None:
        """Append one event to the chain (in its own transaction unless queued by batch())."""
        at = self._now()
        return self._write(
            WriteKey(run_id, dataset, kind),
            lambda c: c.add(at, kind, actor, run_id, dataset, payload),
        )

    def start_run(
        self,
        run_id: str,
        *,
        plan_name: str,
        plan_sha256: str,
        scenario: str,
        actor: str,
        plan_text: str | None = None,
    ) -> bool:
        """Record a run once, with the exact text of the plan it was checked with (every task
        of the run then works from that text); a repeated call is a no-op (returns False)."""
        self.flush()
        with self._chain() as chain:
            row = chain.conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if row is not None:
                return False
            if plan_text is not None:
                known = chain.conn.execute(
                    sa.select(plan_texts.c.sha256).where(plan_texts.c.sha256 == plan_sha256)
                ).first()
                if known is None:
                    chain.conn.execute(
                        plan_texts.insert().values(sha256=plan_sha256, text=plan_text)
                    )
            now = self._now()
            chain.conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    plan_name=plan_name,
                    plan_sha256=plan_sha256,
                    scenario=scenario,
                    state="running",
                    started_at=now,
                    updated_at=now,
                )
            )
            chain.add(
                now,
                "run_started",
                actor,
                run_id,
                None,
                {"plan": plan_name, "plan_sha256": plan_sha256, "scenario": scenario},
            )
            return True

    def set_run_state(
        self, run_id: str, state: str, *, actor: str, payload: dict[str, Any] | None = None
    ) -> Event:
        self.flush()
        with self._chain() as chain:
            now = self._now()
            updated = chain.conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(state=state, updated_at=now)
            ).rowcount
            if not updated:
                raise LedgerError(f"no run {run_id} in the ledger")
            return chain.add(now, f"run_{state}", actor, run_id, None, payload)

    def set_dataset_state(
        self,
        run_id: str,
        dataset: str,
        state: str,
        *,
        actor: str,
        payload: dict[str, Any] | None = None,
        **columns: Any,
    ) -> Event | None:
        """Upsert a dataset's state (and columns like rows, data_class) with its event.

        Setting the same state with the same detail again changes nothing and returns None,
        so a re-run task leaves the ledger as one clean run would.
        """
        detail = canonical_json(payload or {})
        at = self._now()
        values = {"state": state, "detail": detail, "updated_at": at, **columns}

        def write(chain: Chain) -> Event | None:
            where = (datasets.c.run_id == run_id) & (datasets.c.dataset == dataset)
            row = chain.dataset_row(run_id, dataset)
            if row is None:
                chain.conn.execute(
                    datasets.insert().values(run_id=run_id, dataset=dataset, **values)
                )
            elif (
                row["state"] == state
                and row["detail"] == detail
                and all(row.get(k) == v for k, v in columns.items())
            ):
                return None
            else:
                chain.conn.execute(datasets.update().where(where).values(**values))
            chain.dataset_written(run_id, dataset, values)
            return chain.add(at, f"dataset_{state}", actor, run_id, dataset, payload)

        return self._write(WriteKey(run_id, dataset, f"dataset_{state}"), write)

    def add_artifact(
        self,
        run_id: str,
        *,
        kind: str,
        location: str,
        size: int,
        sha256: str,
        actor: str,
        dataset: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Event | None:
        """Record an artifact once; the same (run, kind, location, sha256) again is a no-op."""
        at = self._now()

        def write(chain: Chain) -> Event | None:
            row = chain.artifact_row(run_id, kind, location)
            if row is not None:
                if row["sha256"] == sha256 and row["size"] == size:
                    return None
                raise LedgerError(
                    f"artifact {location} is already recorded with sha256 "
                    f"{row['sha256']}, not {sha256}"
                )
            values = {
                "run_id": run_id,
                "dataset": dataset,
                "kind": kind,
                "location": location,
                "size": size,
                "sha256": sha256,
                "detail": canonical_json(detail or {}),
                "created_at": at,
            }
            chain.conn.execute(artifacts.insert().values(**values))
            chain.artifact_written(run_id, kind, location, values)
            payload = {"location": location, "size": size, "sha256": sha256}
            return chain.add(
                at,
                f"artifact_{kind}",
                actor,
                run_id,
                dataset,
                {**payload, **({"detail": detail} if detail else {})},
            )

        return self._write(WriteKey(run_id, dataset, f"artifact_{kind}", location), write)

    # ------------------------------------------------------------------ reading

    def events(self, *, run_id: str | None = None, after: int | None = None) -> Iterator[Event]:
        """Events in chain order (of one run; after sequence number ``after``), streamed."""
        self._read()
        query = sa.select(events).order_by(events.c.seq)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        if after is not None:
            query = query.where(events.c.seq > after)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(query):
                yield Event.from_row(row)

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
            return [Event.from_row(r) for r in conn.execute(query.order_by(events.c.seq))]

    def latest_dataset_event(self, run_id: str, dataset: str) -> Event | None:
        """The newest ``dataset_*`` event of one dataset (what its datasets row must say)."""
        self._read(run_id, dataset)
        query = (
            sa.select(events)
            .where(
                (events.c.run_id == run_id)
                & (events.c.dataset == dataset)
                & events.c.kind.like("dataset\\_%", escape="\\")
            )
            .order_by(events.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Event.from_row(row) if row else None

    def plan_text(self, sha256: str) -> str | None:
        """The text of the plan with this sha256 that a run was started with, or None."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(plan_texts.c.text).where(plan_texts.c.sha256 == sha256)
            ).first()
        return row.text if row else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        return dict(row._mapping) if row else None

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

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs of every plan, newest first."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    def event_kinds(self, run_id: str) -> set[str]:
        """The kinds of event a run has recorded (cheap: no payloads)."""
        self._read()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.kind).where(events.c.run_id == run_id).distinct()
            ).all()
        return {r.kind for r in rows}

    def dataset_state(self, run_id: str, dataset: str) -> dict[str, Any] | None:
        """One dataset's row (by primary key), or None."""
        self._read(run_id, dataset)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(datasets).where(
                    (datasets.c.run_id == run_id) & (datasets.c.dataset == dataset)
                )
            ).first()
        return {**row._mapping, "detail": json.loads(row.detail)} if row else None

    def dataset_states(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.iter_dataset_states(run_id))

    def iter_dataset_states(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's datasets by name, read 1,000 at a time (a run may have 100,000)."""
        self._read()
        query = sa.select(datasets).where(datasets.c.run_id == run_id).order_by(datasets.c.dataset)
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=1000).execute(query):
                yield {**r._mapping, "detail": json.loads(r.detail)}

    def artifacts(self, run_id: str, *, kind: str | None = None) -> list[dict[str, Any]]:
        self._read()
        query = sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.id)
        if kind is not None:
            query = query.where(artifacts.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def artifact(self, artifact_id: int) -> dict[str, Any] | None:
        """One artifact by its id, or None."""
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return dict(row._mapping) if row else None

    def head(self) -> str:
        self._read()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(events.c.hash).order_by(events.c.seq.desc()).limit(1)
            ).first()
        return row.hash if row else GENESIS

    def verify(
        self, *, expect_head: str | None = None, tables: bool = True, run_id: str | None = None
    ) -> ChainReport:
        """Walk the chain from the first event; raise ChainBroken naming the first bad one.

        With ``tables`` (the default), every row of the datasets and artifacts tables (of
        ``run_id``, or of every run) must also be what its latest chained event wrote:
        TableEdited names the first that is not (those tables are the chain's mutable
        summary; proof is only ever read from the chain)."""
        self._read()
        expected_seq, prev, count = 1, GENESIS, 0
        written: dict[tuple[str, str], tuple[str, str]] = {}
        query = sa.select(events).order_by(events.c.seq)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=5000).execute(query):
                if tables and row.run_id is not None and (run_id is None or row.run_id == run_id):
                    _remember(written, row)
                if row.seq != expected_seq:
                    what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
                    raise ChainBroken(
                        expected_seq if row.seq > expected_seq else row.seq,
                        f"event {expected_seq} is {what}; found event {row.seq} next",
                    )
                if row.prev_hash != prev:
                    raise ChainBroken(
                        row.seq,
                        "its prev_hash does not match the hash of event "
                        f"{row.seq - 1} (an event was inserted, deleted or reordered)",
                    )
                if row_hash(row) != row.hash:
                    raise ChainBroken(
                        row.seq,
                        f"its content does not match its hash (edited); "
                        f"kind={row.kind} dataset={row.dataset}",
                    )
                prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
        if tables:
            self._check_tables(written, run_id)
        if expect_head is not None and prev != expect_head:
            raise ChainBroken(
                count,
                f"the chain ends at {prev} after {count} events, not at the "
                f"expected head {expect_head} (events were removed from the end "
                "or added after it)",
            )
        return ChainReport(events=count, head=prev)

    def _check_tables(
        self, written: dict[tuple[str, str], tuple[str, str]], run_id: str | None
    ) -> None:
        """Every datasets and artifacts row equals what its latest event wrote."""
        dq = sa.select(datasets).order_by(datasets.c.run_id, datasets.c.dataset)
        aq = sa.select(artifacts).order_by(artifacts.c.id)
        if run_id is not None:
            dq = dq.where(datasets.c.run_id == run_id)
            aq = aq.where(artifacts.c.run_id == run_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(dq):
                got = (f"dataset_{row.state}", _digest(row.detail))
                want = written.pop((row.run_id, "d:" + row.dataset), None)
                if want != got:
                    raise TableEdited(
                        f"the ledger's datasets row of {row.dataset} (run {row.run_id}) is not "
                        "what the chain recorded ("
                        f"{'state ' + want[0][8:] if want else 'no event'}, the row says "
                        f"{row.state}): the table was edited; nothing can be "
                        "deleted on it. Restore the ledger from a copy, or start a new run"
                    )
            for row in conn.execution_options(yield_per=1000).execute(aq):
                payload = {"location": row.location, "size": row.size, "sha256": row.sha256}
                detail = json.loads(row.detail)
                if detail:
                    payload["detail"] = detail
                got = (f"artifact_{row.kind}", _digest(canonical_json(payload)))
                want = written.pop((row.run_id, f"a:{row.kind}:{row.location}"), None)
                if want != got:
                    raise TableEdited(
                        f"the ledger's artifacts row {row.id} ({row.kind} {row.location}, run "
                        f"{row.run_id}) is not what the chain recorded: the table was edited"
                    )
        missing = [k for k in written if k[1].startswith("d:")]
        if missing:
            run, name = missing[0]
            raise TableEdited(
                f"the chain records dataset {name[2:]} of run {run}, but the datasets table "
                "has no row for it: the table was edited"
            )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remember(written: dict[tuple[str, str], tuple[str, str]], row: Any) -> None:
    """Keep, per dataset and per artifact, the kind and payload digest of its latest event
    (the payload column holds the canonical JSON the row tables are compared with)."""
    if row.kind.startswith("dataset_") and row.dataset is not None:
        written[(row.run_id, "d:" + row.dataset)] = (row.kind, _digest(row.payload))
    elif row.kind.startswith("artifact_"):
        location = json.loads(row.payload).get("location")
        key = (row.run_id, f"a:{row.kind.removeprefix('artifact_')}:{location}")
        written[key] = (row.kind, _digest(row.payload))
