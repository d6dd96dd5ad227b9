"""PostgreSQL, MySQL/MariaDB and SQLite tables, through SQLAlchemy Core.

Rows stream with server-side cursors (psycopg named cursors, pymysql SSCursor); names are
quoted by the dialect's own identifier preparer; counts are exact (``count(*)``).

SQLite has no column types, only what each value is stored as (integer, real, text, blob):
its rows are read as stored, never converted by the declared type (a DATETIME column holds
text), so a backup holds exactly what the table held and a key read back from the backup
finds its row. Bound values never appear in error messages (they may be identifiers).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.errors import SourceError
from retirement.sources.base import BATCH_ROWS, Column, DatasetRef, Named, Row, Source

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


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
    """Tables of one schema of a SQL database."""

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
        self.engine = sa.create_engine(normalize_url(url), pool_pre_ping=True, hide_parameters=True)
        self.db_schema = schema
        self._tables: dict[str, sa.Table] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

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
                    dataset, sa.MetaData(), schema=self.db_schema, autoload_with=self.engine
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
            names = sa.inspect(self.engine).get_table_names(schema=self.db_schema)
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
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(
                query
            )
            for part in result.partitions(batch_rows):
                yield [tuple(row) for row in part]

    def byte_size(self, dataset: Named) -> int | None:
        query = _SIZE_QUERIES.get(self.dialect)
        if query is None:
            return None
        qualified = self.engine.dialect.identifier_preparer.format_table(self.table(dataset))
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text(query), {"q": qualified, "t": self.table_name(dataset)}
            ).scalar()
        return int(value) if value is not None else None

    def close(self) -> None:
        self.engine.dispose()
