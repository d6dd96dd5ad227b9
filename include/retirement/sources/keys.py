"""Keys of SQL tables: which columns address a table's rows, and the backup's key text turned
back into what the database compares exactly.

PostgreSQL: the backup holds each value as COPY wrote it, and the database casts that text
back to the column's own type (``CAST(%s AS uuid[])``), so every type with an equality
operator works: integers, text with any collation, uuid, numeric, float, dates and times,
boolean, bytea, composite keys. MySQL and MariaDB: the text becomes the Python value the
driver reads (int, Decimal, float, date, datetime, bytes, str), checked to print back as the
very same text. SQLite: what each value is stored as (the backup quotes text and writes
numbers and ``\\x`` blobs bare). A key that cannot address every row exactly is refused
when the table is inventoried, saying why and what to do (``key_problem``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.errors import DeletionRefused

if TYPE_CHECKING:
    from retirement.sources.capabilities import RowDeleter

_INT = re.compile(r"^-?\d+$")
# MySQL/MariaDB column types whose values do not compare exactly with what was read back.
_INEXACT_MYSQL = ("FLOAT", "REAL", "JSON", "GEOMETRY", "POINT")
# PostgreSQL types without an equality operator (cannot be a key at all).
_NO_EQUALITY_PG = ("json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle")


def pg_types(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...]) -> list[str]:
    """Each key column's type as PostgreSQL names it (``numeric(12,3)``)."""
    qualified = conn.dialect.identifier_preparer.format_table(table)
    rows = conn.execute(
        sa.text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
        ),
        {"t": qualified},
    ).all()
    types: dict[str, str] = {name: type_ for name, type_ in rows}
    return [types[c] for c in columns]


def python_value(dialect: str, column: sa.Column[Any], text: str | None, quoted: bool) -> Any:
    """The value that finds ``text`` (a backup field) in ``column`` of a MySQL/MariaDB or
    SQLite table; DeletionRefused where no value would find it exactly."""
    if text is None:
        return None
    if dialect == "sqlite":
        return _sqlite_value(text, quoted)
    kind = column.type.__class__.__name__.upper()
    try:
        python = column.type.python_type
    except NotImplementedError:
        python = str
    try:
        if python is bytes or "BINARY" in kind or "BLOB" in kind:
            value: Any = bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
        elif python is bool or python is int:
            value = int(text) if _INT.match(text) else text
        elif python is Decimal:
            value = Decimal(text)
        elif python is float:
            value = float(text)
        elif python is datetime:
            value = datetime.fromisoformat(text)
        elif python is date:
            value = date.fromisoformat(text)
        else:
            value = text
    except (ValueError, InvalidOperation) as exc:
        raise DeletionRefused(
            f"key column {column.name} ({column.type}): the backup's value cannot be read as "
            f"one of its values ({exc}); nothing of this batch was deleted"
        ) from exc
    return value


def _sqlite_value(text: str, quoted: bool) -> Any:
    if quoted:
        return text
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    if _INT.match(text):
        return int(text)
    return float(text)


def key_problem(
    source: RowDeleter, table_name: str, columns: tuple[str, ...], *, planned: bool
) -> str | None:
    """Why ``columns`` cannot address every row of the table exactly, or None.

    ``planned``: the plan named the key (else it is the table's primary key)."""
    table = source.table(table_name)
    missing = [c for c in columns if c not in table.c]
    if missing:
        return f"the key names column(s) {', '.join(missing)}, which the table does not have"
    dialect = source.dialect
    for c in columns:
        kind = str(table.c[c].type).upper()
        if dialect == "mysql" and kind.startswith(_INEXACT_MYSQL):
            return (
                f"key column {c} is {kind}: a single-precision or non-scalar value read back "
                "does not compare equal to itself; give the plan a key of exact columns"
            )
        if dialect == "postgresql" and kind.lower().startswith(_NO_EQUALITY_PG):
            return f"key column {c} is {kind}, which has no equality operator"
    cols = [table.c[c] for c in columns]
    with source.connect() as conn:
        nulls = conn.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(sa.or_(*(c.is_(None) for c in cols)))
        ).scalar_one()
        if nulls:
            return (
                f"{nulls} row(s) have NULL in key column(s) {', '.join(columns)} (SQLite allows "
                "it in a primary key): a NULL never equals anything, so those rows cannot be "
                "found by key"
            )
        if planned:
            distinct = sa.select(*cols).distinct().subquery()
            keys = conn.execute(sa.select(sa.func.count()).select_from(distinct)).scalar_one()
            rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if keys != rows:
                return (
                    f"the key ({', '.join(columns)}) is not unique: {rows} rows have {keys} "
                    "distinct keys, so deleting one key would delete rows that share it"
                )
    return None
