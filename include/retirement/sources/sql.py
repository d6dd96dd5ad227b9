"""PostgreSQL, MySQL/MariaDB and SQLite tables, through SQLAlchemy Core.

Rows stream with server-side cursors (psycopg named cursors, pymysql SSCursor); names are
quoted by the dialect's own identifier preparer; counts are exact (``count(*)``).

SQLite has no column types, only what each value is stored as (integer, real, text, blob):
its rows are read as stored, never converted by the declared type (a DATETIME column holds
text), so a backup holds exactly what the table held and a key read back from the backup
finds its row. Bound values never appear in error messages (they may be identifiers).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.errors import SourceError
from retirement.sources.base import BATCH_ROWS, Column, DatasetRef, Named, Row, Source

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pyarrow as pa

    from retirement.deletion.foreign_keys import ForeignKey
    from retirement.sources.capabilities import Emptied
    from retirement.sources.pg_copy import CopyExport


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``mysql://`` URLs and pick the project's drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("mysql://", "mysql+pymysql://"),
        ("mariadb://", "mysql+pymysql://"),
    ):
        if url.startswith(plain):
            return driver + url.removeprefix(plain)
    return url


def driver_connection(conn: sa.Connection) -> Any:
    """The DBAPI driver's own connection (psycopg's, for COPY; sqlite3's, for BEGIN IMMEDIATE)."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise SourceError("the database connection was closed before it could be used")
    return raw


# Names travel as bound parameters, never pasted into the SQL text.
_SIZE_QUERIES = {
    "postgresql": "SELECT pg_total_relation_size(CAST(:q AS regclass))",
    "mysql": "SELECT data_length + index_length FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = :t",
}


@contextmanager
def database_errors(engine: sa.Engine, where: str) -> Iterator[None]:
    """SQLAlchemy's errors and the driver's own (COPY and SQLite's write lock use the driver
    directly) as one SourceError naming ``where``: the one place they are translated. Bound
    values never appear (the engines hide them)."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise SourceError(
            f"{where}: the database failed ({type(cause).__name__}: {first}); what was not "
            "committed was rolled back, a retry starts again from what is there"
        ) from exc


class SqlSource(Source):
    """Tables of one schema of a SQL database: a KeyedSource, CopyExporter, RowDeleter,
    Reclaimer, TableDropper and TableEmptier (``sources.capabilities``)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        schema: str | None = None,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(name, include=include, exclude=exclude)
        self._engine = sa.create_engine(
            normalize_url(url), pool_pre_ping=True, hide_parameters=True
        )
        self.db_schema = schema
        self._tables: dict[str, sa.Table] = {}

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def location(self) -> dict[str, Any]:
        """Where the database is, as a certificate states it: host, port, database and schema
        (SQLite: the file's path); never a user name or password."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite":
            return {"engine": "sqlite", "path": url.database}
        return {
            "engine": url.get_backend_name(),
            "host": url.host,
            "port": url.port,
            "database": url.database,
            "schema": self.db_schema,
        }

    def table_name(self, dataset: Named) -> str:
        ds = self.id_of(dataset)
        if ds.sheet is not None:
            raise SourceError(f"source {self.name}: {ds} names a sheet; tables have none")
        return ds.object

    def table(self, dataset: Named) -> sa.Table:
        dataset = self.table_name(dataset)
        if dataset not in self._tables:
            try:
                self._tables[dataset] = sa.Table(
                    dataset, sa.MetaData(), schema=self.db_schema, autoload_with=self._engine
                )
            except sa.exc.NoSuchTableError as exc:
                raise SourceError(f"source {self.name}: no table {dataset!r}") from exc
            except sa.exc.SQLAlchemyError as exc:
                raise SourceError(
                    f"source {self.name}: cannot read table {dataset!r}: "
                    f"{getattr(exc, 'orig', exc)}"
                ) from exc
        return self._tables[dataset]

    def datasets(self) -> list[DatasetRef]:
        try:
            names = sa.inspect(self._engine).get_table_names(schema=self.db_schema)
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(
                f"source {self.name}: cannot list tables: {getattr(exc, 'orig', exc)}"
            ) from exc
        from retirement.model.ids import DatasetId

        return [DatasetRef(DatasetId(self.name, n)) for n in sorted(names) if self.wanted(n)]

    def forget(self, dataset: Named) -> None:
        """Drop what was reflected of a table (it was dropped or altered)."""
        self._tables.pop(self.table_name(dataset), None)

    def schema(self, dataset: Named) -> list[Column]:
        return [Column(c.name, str(c.type)) for c in self.table(dataset).columns]

    def selectable(self, dataset: Named) -> sa.Select[*tuple[Any, ...]]:
        """``SELECT`` of every column as the source reads it (SQLite: as stored)."""
        table = self.table(dataset)
        if self.dialect == "sqlite":
            return sa.select(
                *(sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in table.columns)
            )
        return sa.select(table)

    def count(self, dataset: Named) -> int:
        table = self.table(dataset)
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def key_columns(self, dataset: Named) -> list[str]:
        """The primary key, used for a stable order and for scoped deletion later."""
        return [c.name for c in self.table(dataset).primary_key.columns]

    def batches(self, dataset: Named, *, batch_rows: int = BATCH_ROWS) -> Iterator[list[Row]]:
        table = self.table(dataset)
        query = self.selectable(dataset)
        keys = self.key_columns(dataset)
        if keys:
            query = query.order_by(*(table.c[k] for k in keys))
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                query
            )
            for part in result.partitions(batch_rows):
                yield [tuple(row) for row in part]

    def byte_size(self, dataset: Named) -> int | None:
        query = _SIZE_QUERIES.get(self.dialect)
        if query is None:
            return None
        qualified = self._engine.dialect.identifier_preparer.format_table(self.table(dataset))
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.text(query), {"q": qualified, "t": self.table_name(dataset)}
            ).scalar()
        return int(value) if value is not None else None

    # ------------------------------------------------------------------ capabilities

    def quoted(self, dataset: Named) -> str:
        return self._engine.dialect.identifier_preparer.format_table(self.table(dataset))

    def connect(self) -> AbstractContextManager[sa.Connection]:
        return self._engine.connect()

    def engine_url(self) -> sa.URL:
        """The database's URL (password included: never log it; ``render_as_string``
        hides it)."""
        return self._engine.url

    def begin(self) -> AbstractContextManager[sa.Connection]:
        return self._engine.begin()

    @contextmanager
    def write_locked(self) -> Iterator[Any]:
        """SQLite: the driver's connection under BEGIN IMMEDIATE, committed if the block
        ends without an error, else rolled back."""
        with self._engine.connect() as conn:
            raw = driver_connection(conn)
            before = raw.isolation_level
            raw.isolation_level = None
            try:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    yield raw
                except BaseException:
                    raw.execute("ROLLBACK")
                    raise
                raw.execute("COMMIT")
            finally:
                raw.isolation_level = before

    def errors(self, where: str) -> AbstractContextManager[None]:
        return database_errors(self._engine, where)

    def copy_export(
        self, dataset: Named, key_column: str | None, *, blocks: bool = False
    ) -> AbstractContextManager[CopyExport] | None:
        """The database's own export: PostgreSQL's ``COPY ... TO STDOUT``
        (``sources.pg_copy``), MySQL/MariaDB's rows formatted as CSV lines by the server
        (``sources.mysql_export``, where the column types allow); None elsewhere."""
        if self.dialect == "mysql":
            from retirement.sources.mysql_export import line_export

            return line_export(self, dataset, key_column, blocks=blocks)
        if self.dialect != "postgresql":
            return None
        from retirement.sources.pg_copy import copy_export

        return copy_export(self, dataset, key_column, blocks=blocks)

    def arrow_batches(
        self, dataset: Named, batch_rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[list[pa.Array]] | None:
        """PostgreSQL: the table through COPY into Arrow (``sources.pg_arrow``; blocks of about
        a MiB, whatever ``batch_rows``); MySQL/MariaDB: CSV lines written by the server
        (``sources.mysql_arrow``, where the column types allow); None elsewhere. A table's
        columns are read from the server (``columns`` is not needed)."""
        if self.dialect == "mysql":
            from retirement.sources.mysql_arrow import line_columns

            return line_columns(self, dataset, batch_rows)
        if self.dialect != "postgresql":
            return None
        from retirement.sources.pg_arrow import copy_columns

        return copy_columns(self, dataset)

    def reclaim(self, dataset: Named, rewrite: str | None = None) -> str:
        """After a delete: make the space reusable, and rewrite the table when the plan asks
        (``rewrite``: vacuum_full, optimize, none; None: the database's usual step). What each
        achieves is in docs/deletion.md; the text returned goes into the certificate."""
        name = self.quoted(dataset)
        with self._engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql" and rewrite == "vacuum_full":
                conn.exec_driver_sql(f"VACUUM FULL {name}")
                return f"VACUUM FULL {name} (the table and its indexes rewritten into new files)"
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"VACUUM {name}")
                return (
                    f"VACUUM {name} (space made reusable; the table was not rewritten, deleted "
                    "rows' bytes stay in its files until overwritten)"
                )
            if self.dialect == "mysql" and rewrite != "none":
                conn.exec_driver_sql(f"OPTIMIZE TABLE {name}")
                return f"OPTIMIZE TABLE {name} (InnoDB: the table rebuilt into a new file)"
            if self.dialect == "sqlite" and rewrite != "none":
                conn.exec_driver_sql("VACUUM")
                return "VACUUM (SQLite rewrites the whole database file)"
        return "no rewrite (the plan's rewrite: none; deleted rows' bytes stay until overwritten)"

    def foreign_keys(self) -> list[ForeignKey]:
        from retirement.deletion.foreign_keys import read_foreign_keys

        with self.errors("reading foreign keys"):
            return read_foreign_keys(self._engine, self.db_schema)

    def empty_checked(
        self, dataset: Named, columns: Sequence[str], rows: int, check: Callable[[], bool]
    ) -> Emptied | None:
        """PostgreSQL: TRUNCATE under a lock against writers (``sources.pg_truncate``);
        MySQL/MariaDB: every row deleted and held, then checked (``sources.mysql_empty``);
        None (nothing done) on SQLite."""
        if self.dialect == "postgresql":
            from retirement.sources.pg_truncate import truncate_checked

            return truncate_checked(self._engine, self.quoted(dataset), columns, check)
        if self.dialect == "mysql":
            from retirement.sources.mysql_empty import delete_all_checked

            return delete_all_checked(self._engine, self.table(dataset), columns, rows, check)
        return None

    def drop_if_empty(self, dataset: Named) -> str | None:
        table, name = self.table(dataset), self.quoted(dataset)
        with self._engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                return None
            table.drop(conn)
        self.forget(dataset)
        return f"DROP TABLE {name}"

    def close(self) -> None:
        self._engine.dispose()
