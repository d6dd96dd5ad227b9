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
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from retirement.errors import LedgerError
from retirement.ledger.chain import Chain, ChainReport, Event, WriteKey
from retirement.ledger.db import (
    PREVIEW_STARTED,
    artifacts,
    canonical_json,
    create_schema,
    datasets,
    engine_for,
    format_version,
    plan_texts,
    require_existing_sqlite,
    runs,
    safe_url,
    same_kind,
)
from retirement.ledger.reads import LedgerReads
from retirement.model.records import fold
from retirement.model.state import DatasetState, RunState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger(LedgerReads):
    """Runs, datasets, artifacts and the audit chain in one SQL database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._pending: list[tuple[WriteKey, Callable[[Chain], object]]] | None = None
        self._max_pending = 500
        self._v3_from: int | None = None  # where encoding 3 starts (ledger.encoding)

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
                create_schema(engine)
            else:
                with engine.connect() as conn:
                    missing = [t for t in ("events", "runs") if not sa.inspect(conn).has_table(t)]
                if missing:
                    raise LedgerError(
                        f"{safe_url(url)} is not a retirement ledger: no table {missing[0]}"
                    )
            format_version(engine, where=safe_url(url), upgrade=create)
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
            chain = Chain(conn, self._v3_from)
            self._v3_from = chain.v3_from
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
        preview: bool = False,
    ) -> bool:
        """Record a run once, with the exact text of the plan it was checked with (every task
        of the run then works from that text); a repeated call is a no-op (returns False). A
        ``preview`` run is opened in state ``preview`` by a ``preview_started`` event (not
        ``run_started``): it is never approved, deleting or sealed, nor re-opened as real."""
        self.flush()
        with self._chain() as chain:
            row = chain.conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            if row is not None:
                same_kind(chain.conn, run_id, preview=preview, then="be re-opened so")
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
                    state=(RunState.PREVIEW if preview else RunState.RUNNING).value,
                    started_at=now,
                    updated_at=now,
                )
            )
            kind = PREVIEW_STARTED if preview else "run_started"
            payload = {"plan": plan_name, "plan_sha256": plan_sha256, "scenario": scenario}
            chain.add(now, kind, actor, run_id, None, payload)
            return True

    def set_run_state(
        self,
        run_id: str,
        state: RunState,
        *,
        actor: str,
        payload: dict[str, Any] | None = None,
    ) -> Event | None:
        """Record where the run stands now (the ``runs`` row and a ``run_<state>`` event);
        the state it is already in changes nothing. A change the state machine does not
        allow (``RunState.may_become``) is refused."""
        self.flush()
        state = RunState(state)
        with self._chain() as chain:
            row = chain.conn.execute(sa.select(runs.c.state).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise LedgerError(f"no run {run_id} in the ledger")
            now = RunState(row.state)
            if now is state:
                return None
            if not now.may_become(state):
                raise LedgerError(f"run {run_id} is {now.label}: it cannot become {state.label}")
            if state is not RunState.FAILED:
                preview = state is RunState.PREVIEW
                same_kind(chain.conn, run_id, preview=preview, then=f"become {state.label}")
            at = self._now()
            chain.conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(state=state.value, updated_at=at)
            )
            return chain.add(at, f"run_{state}", actor, run_id, None, payload)

    def set_dataset_state(
        self,
        run_id: str,
        dataset: str,
        state: DatasetState,
        *,
        actor: str,
        payload: dict[str, Any] | None = None,
        **columns: Any,
    ) -> Event | None:
        """Record a dataset's new state and what its phase added (``payload``: the inventory,
        which starts the dataset's record afresh, or one phase record, see model.records),
        with columns like rows and data_class.

        The event carries only ``payload``; the datasets row keeps the record so far
        (``model.records.fold``). Recording the same state with nothing new changes nothing
        and returns None, so a re-run task leaves the ledger as one clean run would. A
        change the state machine does not allow (``DatasetState.may_become``: e.g. anything
        after ``deleted``) is refused with LedgerError.
        """
        state = DatasetState(state)
        added = payload or {}
        at = self._now()

        def write(chain: Chain) -> Event | None:
            where = (datasets.c.run_id == run_id) & (datasets.c.dataset == dataset)
            row = chain.dataset_row(run_id, dataset)
            before = None if row is None else json.loads(row["detail"])
            if row is not None and not DatasetState(row["state"]).may_become(state):
                raise LedgerError(
                    f"{dataset} (run {run_id}) is {row['state']}: it cannot become {state}"
                )
            detail = canonical_json(fold(before, state, added))
            values = {"state": state.value, "detail": detail, "updated_at": at, **columns}
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
            return chain.add(at, state.event_kind, actor, run_id, dataset, added)

        return self._write(WriteKey(run_id, dataset, state.event_kind), write)

    def add_artifact(
        self,
        run_id: str,
        *,
        kind: str,
        location: str | Path,
        size: int | None = None,
        sha256: str,
        actor: str,
        dataset: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Event | None:
        """Record an artifact once; the same (run, kind, location, sha256) again is a no-op.
        A ``Path`` is a file just written, whose size (unless given) is read from disk."""
        at = self._now()
        if size is None:
            size = Path(location).stat().st_size
        location = str(location)

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

    def verify(
        self, *, expect_head: str | None = None, tables: bool = True, run_id: str | None = None
    ) -> ChainReport:
        """Walk the chain from the first event; raise ChainBroken naming the first bad one.
        With ``tables``, the datasets and artifacts rows too (see ledger.verify)."""
        from retirement.ledger.verify import verify_chain

        self._read()
        return verify_chain(self.engine, expect_head=expect_head, tables=tables, run_id=run_id)
