"""The ledger's SQL side: its tables, the canonical JSON of payloads, engines for SQLite and
PostgreSQL, and the lock that serializes writers of the hash chain. ``retirement.ledger.core``
holds what is done with them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from retirement.errors import LedgerError
from retirement.ledger.encoding import META_KEY, canonical

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

_ADVISORY_LOCK_KEY = 0x7265746972  # "retir": one lock for the whole events table
_SCHEMA_LOCK_KEY = 0x72657469736B  # "retisk": one creator of the tables at a time

metadata = sa.MetaData()


def _run_state_table(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A table of things in a run that have a state: keyed by run (and ``columns``' own
    keys), with the state and when it last changed."""
    key = sa.Column("run_id", sa.String(250), primary_key=True)
    return sa.Table(name, metadata, key, *columns, *_texts(state=32, updated_at=40))


def _texts(**lengths: int) -> list[sa.Column[Any]]:
    """Required text columns, each of its length, in the order given."""
    return [sa.Column(name, sa.String(n), nullable=False) for name, n in lengths.items()]


runs = _run_state_table("runs", *_texts(plan_name=64, plan_sha256=64, scenario=32, started_at=40))

datasets = _run_state_table(
    "datasets",
    sa.Column("dataset", sa.String(500), primary_key=True),
    sa.Column("data_class", sa.String(32)),
    sa.Column("disposition", sa.String(64)),
    sa.Column("rows", sa.BigInteger),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("dataset", sa.String(500)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("run_id", "kind", "location", name="uq_artifact_location"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(250)),
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(500)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
)


# The exact bytes of every plan a run was checked with (UTF-8 text), by their sha256.
plan_texts = sa.Table(
    "plan_texts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
)


# The ledger's format version (model.versions.LEDGER_FORMAT); a ledger without this table
# is version 1.
ledger_meta = sa.Table(
    "ledger_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


# A run's events of some kinds (approvals, certificates, notices) are looked up per dataset.
events_by_run = sa.Index("ix_events_run_kind", events.c.run_id, events.c.kind)
# ... and a dataset's latest event, before it is deleted.
events_by_dataset = sa.Index("ix_events_run_dataset", events.c.run_id, events.c.dataset)


def canonical_json(value: Any) -> str:
    """One byte-exact JSON text per value: RFC 8785 (ledger.encoding.canonical). Rows
    written before format 3 hold Python's form (``1.0``): compare parsed values."""
    return canonical(value)


def read_v3_from(conn: Connection) -> int | None:
    """The first event of encoding 3 (None: the ledger has none; see ledger.encoding)."""
    if not sa.inspect(conn).has_table("ledger_meta"):
        return None
    value = conn.execute(
        sa.select(ledger_meta.c.value).where(ledger_meta.c.key == META_KEY)
    ).scalar()
    if value is None:
        return None
    if not value.isdigit():
        raise LedgerError(f"ledger_meta {META_KEY} is not a sequence number: {value!r}")
    return int(value)


# ---------------------------------------------------------------------- engine


def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa_event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=FULL")

        @sa_event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


def require_existing_sqlite(url: str) -> None:
    """Refuse to open (and so create) a SQLite ledger file that is not there."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise LedgerError(
            f"not a database URL: {url!r} (expected e.g. sqlite:///ledger.sqlite "
            "or postgresql://user@host/db)"
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from pathlib import Path

        if not Path(parsed.database).is_file():
            raise LedgerError(f"no ledger file at {parsed.database} (from {url})")


def create_schema(engine: Engine) -> None:
    """Create the ledger's tables and indexes where missing, one creator at a time: tasks of
    a first run open an empty ledger database at the same moment, and two CREATE TABLEs of
    one table make the second fail (PostgreSQL: a duplicate pg_type row; MySQL: "already
    exists"). PostgreSQL: an advisory lock for the transaction (its DDL is transactional);
    MySQL/MariaDB: a named lock for the session; SQLite: BEGIN IMMEDIATE's write lock."""
    with engine.connect() as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            conn.execute(sa.text("SELECT GET_LOCK('retirement_ledger_schema', 120)"))
            try:
                _create(conn)
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK('retirement_ledger_schema')"))
            return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        _create(conn)


def _create(conn: Connection) -> None:
    metadata.create_all(conn)
    events_by_run.create(conn, checkfirst=True)  # ledgers made before these indexes
    events_by_dataset.create(conn, checkfirst=True)


def format_version(engine: Engine, *, where: str, upgrade: bool) -> int:
    """The ledger's format version, refused (LedgerError) when it is newer than this code
    reads; with ``upgrade``, an older ledger is recorded as the current version (this code
    writes version 3 events into it and reads its older events unchanged): encoding 3
    starts after its last event (``chain_encoding_3_from``, under the chain lock)."""
    from retirement.model.versions import LEDGER_FORMAT, check_version

    key = ledger_meta.c.key == "format_version"
    with engine.begin() as conn:
        has_meta = sa.inspect(conn).has_table("ledger_meta")
        row = conn.execute(sa.select(ledger_meta.c.value).where(key)).first() if has_meta else None
        found: object = None
        if row is not None:
            found = int(row.value) if row.value.isdigit() else row.value
        version = check_version(found, LEDGER_FORMAT, what=f"ledger {where}", error=LedgerError)
        if upgrade and has_meta and version < LEDGER_FORMAT:
            lock_chain(conn)
            _start_encoding_3(conn)
            row = conn.execute(sa.select(ledger_meta.c.value).where(key)).first()  # locked now
            if row is None:
                conn.execute(
                    ledger_meta.insert().values(key="format_version", value=str(LEDGER_FORMAT))
                )
            else:
                conn.execute(ledger_meta.update().where(key).values(value=str(LEDGER_FORMAT)))
            version = LEDGER_FORMAT
    return version


def _start_encoding_3(conn: Connection) -> None:
    if read_v3_from(conn) is not None:
        return
    last = conn.execute(sa.select(sa.func.max(events.c.seq))).scalar()
    conn.execute(ledger_meta.insert().values(key=META_KEY, value=str((last or 0) + 1)))


def lock_chain(conn: Connection) -> None:
    """Serialize writers of the chain for the rest of this transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(
            sa.select(events.c.seq).order_by(events.c.seq.desc()).limit(1).with_for_update()
        )
    # SQLite: BEGIN IMMEDIATE already holds the database's single write lock.


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable ledger URL>"


PREVIEW_STARTED = "preview_started"  # opens a preview run (a real run: run_started)


def is_preview(conn: Connection, run_id: str) -> bool:
    """Whether ``run_id`` was opened as a preview (it has a ``preview_started`` event)."""
    query = sa.select(events.c.seq).where(
        (events.c.run_id == run_id) & (events.c.kind == PREVIEW_STARTED)
    )
    return conn.execute(query.limit(1)).first() is not None


def same_kind(conn: Connection, run_id: str, *, preview: bool, then: str) -> None:
    """Refuse (LedgerError) unless ``run_id`` is a preview exactly when ``preview`` is."""
    if is_preview(conn, run_id) != preview:
        what = "a preview" if not preview else "a real run, not a preview"
        raise LedgerError(f"run {run_id} is {what}: it cannot {then}")
