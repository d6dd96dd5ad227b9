"""What some sources can do beyond listing, describing and streaming (``Source``).

Each capability is a small protocol a source may implement; a caller asks
``isinstance(source, RowDeleter)`` and calls the protocol's methods, never the source's
attributes, and never asks which kind of source it holds (rclone's optional interfaces,
restic's backend). Which sources implement what:

================  =========  ==========  ========
capability        SqlSource  FileSource  S3Source
================  =========  ==========  ========
KeyedSource       yes
CopyExporter      yes (PostgreSQL's COPY; None elsewhere)
ColumnReader      yes (PostgreSQL's COPY)  yes (Parquet)  yes (Parquet)
RowDeleter        yes
Reclaimer         yes
ForeignKeyReader  yes
TableDropper      yes
TableEmptier      yes (PostgreSQL, MySQL/MariaDB; None elsewhere)
ObjectSource                 yes         yes
ObjectDeleter                yes         yes
================  =========  ==========  ========
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager

    import pyarrow as pa
    import sqlalchemy as sa

    from retirement.deletion.foreign_keys import ForeignKey
    from retirement.model.ids import DatasetId
    from retirement.sources.pg_copy import CopyExport


@runtime_checkable
class KeyedSource(Protocol):
    """The source knows each dataset's primary key (a database does)."""

    def key_columns(self, dataset: DatasetId | str) -> list[str]:
        """The primary key's columns in order, or [] where the dataset has none."""
        ...


@runtime_checkable
class CopyExporter(Protocol):
    """The database has a bulk export in the backup's own CSV form (PostgreSQL's COPY)."""

    def copy_export(
        self, dataset: DatasetId | str, key_column: str | None, *, blocks: bool = False
    ) -> AbstractContextManager[CopyExport] | None:
        """The export of ``dataset`` ordered by its key, to be entered; None where this
        database has no such export (the rows are then read through ``batches``). With
        ``blocks``, the export may come in blocks not cut at records (``CopyExport.blocks``)."""
        ...


@runtime_checkable
class ColumnReader(Protocol):
    """The source can hand a whole dataset as Arrow columns, batch by batch, without a
    Python object per cell (PostgreSQL's COPY and MariaDB's server-written CSV lines parsed by
    pyarrow; Parquet files)."""

    def arrow_batches(
        self, dataset: DatasetId | str, batch_rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[list[pa.Array]] | None:
        """Every row of ``dataset`` as one Arrow array per column (in the schema's order),
        or None where this dataset has no columnar form (the rows are then read through
        ``batches``). ``columns``: the names ``schema`` gave, where the caller has them
        (a JSON-lines file's column list is a read of the whole file)."""
        ...


@runtime_checkable
class RowDeleter(Protocol):
    """Rows can be read and deleted in transactions that see them as the source reads them
    (SQL tables). ``deletion`` compares every row it removes with the backup."""

    @property
    def dialect(self) -> str:
        """The database's dialect name (``postgresql``, ``mysql``, ``sqlite``)."""
        ...

    def table(self, dataset: DatasetId | str) -> sa.Table:
        """The table, as reflected from the database."""
        ...

    def selectable(self, dataset: DatasetId | str) -> sa.Select[Any]:
        """``SELECT`` of every column as the source reads it."""
        ...

    def count(self, dataset: DatasetId | str) -> int:
        """The exact number of rows now."""
        ...

    def quoted(self, dataset: DatasetId | str) -> str:
        """The table's name as the database's own quoting writes it."""
        ...

    def connect(self) -> AbstractContextManager[sa.Connection]:
        """A connection (no transaction begun)."""
        ...

    def begin(self) -> AbstractContextManager[sa.Connection]:
        """A connection in a transaction, committed when the block ends, else rolled back."""
        ...

    def write_locked(self) -> AbstractContextManager[Any]:
        """SQLite: the driver's own connection under the database's write lock (BEGIN
        IMMEDIATE), committed only when the block ends without an error."""
        ...

    def errors(self, where: str) -> AbstractContextManager[None]:
        """The database's errors inside the block, as one SourceError naming ``where``."""
        ...


@runtime_checkable
class Reclaimer(Protocol):
    """Deleted rows' space can be made reusable (VACUUM, OPTIMIZE TABLE)."""

    def reclaim(self, dataset: DatasetId | str, rewrite: str | None = None) -> str:
        """Reclaim the table's freed space, or rewrite the table when ``rewrite`` asks
        (vacuum_full, optimize, none); say what was run."""
        ...


@runtime_checkable
class ForeignKeyReader(Protocol):
    """The database says which of its tables reference which (deletion runs children first)."""

    def foreign_keys(self) -> list[ForeignKey]:
        """Every foreign key between two tables of the source's schema."""
        ...


@runtime_checkable
class TableDropper(Protocol):
    """A table can be dropped."""

    def drop_if_empty(self, dataset: DatasetId | str) -> str | None:
        """DROP the table if it holds no rows, in one transaction; what was run, or None when
        rows were there (nothing dropped)."""
        ...


@dataclass(frozen=True)
class Emptied:
    """What ``TableEmptier.empty_checked`` ran, and whether the table now lies in new files
    (TRUNCATE: nothing left to reclaim) or the rows were deleted in place (reclaim after)."""

    ran: str
    new_files: bool


@runtime_checkable
class TableEmptier(Protocol):
    """A table can be emptied in one transaction that holds its rows against writers,
    readers reading on, while a check reads them from another session."""

    def empty_checked(
        self, dataset: DatasetId | str, columns: Sequence[str], rows: int, check: Callable[[], bool]
    ) -> Emptied | None:
        """Empty the table in one transaction that commits only if ``check`` returns True,
        the table's columns are ``columns`` and (where the database counts what it removes)
        it held ``rows`` rows; ``check`` runs once the table's rows are
        held against writers (what it reads is what is removed). What was run, or None when
        nothing was (the check failed, a lock was not had in time, or emptying at once would
        do more than deleting the rows checked: triggers, a foreign key onto it, row-level
        security, another database)."""
        ...


class PinnedObject(Protocol):
    """An object held for one backup's reads (``ObjectSource.pinned``)."""

    size: int | None  # its size when pinned, where known

    def state(self, document: tuple[int, str] | None = None) -> dict[str, object]:
        """What the backup records of the object: what identifies the very content every
        read while pinned saw (a file: its size and SHA-256; an S3 object: its version and
        ETag). ``document``: (size, SHA-256) of a document's bytes as the backup streamed
        them. ObjectChanged (errors.py) where the reads did not all see one content."""
        ...


@runtime_checkable
class ObjectSource(Protocol):
    """Each dataset is an object (a file, an S3 key) that can be read whole, digested, and
    pinned while a backup reads it, so what the backup records is what it read."""

    def open_bytes(self, dataset: DatasetId | str) -> IO[bytes]:
        """The object's bytes, streamed."""
        ...

    def digest(self, dataset: DatasetId | str) -> tuple[int, str]:
        """(size, sha256) of the object's bytes, streamed."""
        ...

    def pinned(self, dataset: DatasetId | str) -> AbstractContextManager[PinnedObject]:
        """Hold the object while a backup reads it: every read of it through this source
        until the context ends sees one content, or ``state`` says it did not."""
        ...


@dataclass(frozen=True)
class ObjectRemoval:
    """What ``ObjectDeleter.delete_object`` did: objects removed (0: already gone), how."""

    removed: int
    technique: str
    note: str = ""


@dataclass(frozen=True)
class BackedUp:
    """What a backup recorded of the object it read (``PinnedObject.state``), when it
    was made, and, for a sheet of a workbook, what the backups of the other sheets recorded
    (``sheet(name)``: raises DeletionRefused where that sheet's backup is not approved)."""

    state: Mapping[str, Any]
    at: str
    sheet: Callable[[str], Mapping[str, Any]]


@runtime_checkable
class ObjectDeleter(Protocol):
    """The object holding a dataset can be removed, exactly as a backup recorded it
    (``PinnedObject.state`` at backup time) and nothing beside it."""

    def holds(self, dataset: DatasetId | str, recorded: Mapping[str, Any]) -> bool | None:
        """True: the recorded object is there unchanged; False: another object is under its
        name; None: nothing is."""
        ...

    def delete_object(self, dataset: DatasetId | str, backed_up: BackedUp) -> ObjectRemoval:
        """Remove the object if it is still the one the backup recorded (DeletionRefused
        naming what differs otherwise; ObjectRemoval with 0 removed when it is already
        gone). A workbook is one object for all its sheets: it goes only when what the
        backup of each other sheet recorded is of this same object."""
        ...
