"""The sources the hunt builds and mutates: SQLite, PostgreSQL, MariaDB tables; a folder tree.

Every row (and every file or sheet row) carries a token, unique per version of the row (a
duplicated row of a keyless table shares its token), so what vanished from a source is a
multiset of tokens, compared with the tokens found in the backups by the standard ``csv``
module. The backends talk to the databases with their own drivers, not with the library.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

TOK = "tok"


# ---------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Rule:
    """A dataset rule of the plan for one table or file."""

    disposition: str
    key: tuple[str, ...] = ()
    drop_table: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, logical type); the token column is added
    pk: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # values of ``columns``, in order
    duplicates: int = 0  # extra copies of the first rows (keyless tables)
    rule: Rule | None = None
    excluded: bool = False


@dataclass(frozen=True)
class File:
    path: tuple[str, ...]  # segments; a segment "\udcff" is the byte 0xff (surrogateescape)
    kind: str  # csv, doc, xlsx
    rows: int = 1
    sheets: tuple[str, ...] = ()
    rule: Rule | None = None
    excluded: bool = False

    @property
    def relative(self) -> str:
        return "/".join(self.path)


# ---------------------------------------------------------------------- values


def value_of(logical: str, n: int) -> Any:
    """The ``n``-th distinct value of a logical type (the same on every backend)."""
    base = datetime(2024, 1, 1, 8, 0, 0)
    return {
        "int": n * 7 - 20,
        "bigint": 2**40 + n,
        "text": ["a", "A", "a ", "b#1", "c.d", "é", "中文", "x|y", "q'\"", "l\nm", "%41"][n % 11]
        + ("" if n < 11 else str(n)),
        "char": f"c{n}",
        "uuid": uuid.UUID(int=n * 7919 + 1),
        "numeric": Decimal(n * 125) / Decimal(1000) - Decimal("1.5"),
        "float": n / 4 - 2.0,
        "date": date(2024, 1, 1) + timedelta(days=n),
        "time": clock(8, n % 60, n % 7),
        "timestamp": base + timedelta(minutes=n, microseconds=n * 17),
        "timestamptz": (base + timedelta(minutes=n)).replace(tzinfo=UTC),
        "bool": bool(n % 2),
        "bytes": bytes([n % 256, 0, 255 - n % 256]),
        "sqlite_datetime": (base + timedelta(hours=n)).strftime("%Y-%m-%d %H:%M:%S"),
        "real": n / 8 + 0.5,
        "float32": n / 4 + 0.1,  # not exact in single precision: read back, it is not equal
    }[logical]


# ---------------------------------------------------------------------- SQL


class SqlBackend:
    """A database the hunt owns: DDL, the app's own writes, and reading tokens back."""

    kind: str
    types: dict[str, str]

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> Any:
        raise NotImplementedError

    def q(self, name: str) -> str:
        raise NotImplementedError

    def ph(self) -> str:
        return "%s"

    def run(self, sql: str, params: Iterable[Any] = ()) -> None:
        with contextlib.closing(self.connect()) as conn:
            cur = conn.cursor()
            cur.execute(sql, tuple(params))
            conn.commit()

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with contextlib.closing(self.connect()) as conn:
            cur = conn.cursor()
            cur.execute(sql, tuple(params))
            rows = list(cur.fetchall())
            conn.commit()
            return rows

    def create(self, table: Table) -> bool:
        cols = [f"{self.q(c)} {self.types[t]}" for c, t in table.columns]
        cols.append(f"{self.q(TOK)} {self.types['tok']}")
        if table.pk:
            cols.append(f"PRIMARY KEY ({', '.join(self.q(c) for c in table.pk)})")
        try:
            self.run(f"CREATE TABLE {self.q(table.name)} ({', '.join(cols)})")
        except Exception:  # a name or type this database refuses: skip it
            return False
        return True

    def insert(self, table: Table, values: tuple[Any, ...], tok: str) -> bool:
        names = [c for c, _ in table.columns] + [TOK]
        sql = (
            f"INSERT INTO {self.q(table.name)} ({', '.join(self.q(n) for n in names)}) "
            f"VALUES ({', '.join([self.ph()] * len(names))})"
        )
        try:
            self.run(sql, (*values, tok))
        except Exception:  # a duplicate key: the app's insert fails
            return False
        return True

    def retoken(self, table: Table, old: str, new: str) -> bool:
        tok, ph = self.q(TOK), self.ph()
        sql = f"UPDATE {self.q(table.name)} SET {tok} = {ph} WHERE {tok} = {ph}"
        with contextlib.closing(self.connect()) as conn:
            cur = conn.cursor()
            cur.execute(sql, (new, old))
            conn.commit()
            return cur.rowcount == 1

    def remove(self, table: Table, tok: str) -> int:
        sql = f"DELETE FROM {self.q(table.name)} WHERE {self.q(TOK)} = {self.ph()}"
        with contextlib.closing(self.connect()) as conn:
            cur = conn.cursor()
            cur.execute(sql, (tok,))
            conn.commit()
            return cur.rowcount

    def tokens(self, table: Table) -> Counter[str]:
        try:
            rows = self.query(f"SELECT {self.q(TOK)} FROM {self.q(table.name)}")
        except Exception:  # dropped
            return Counter()
        return Counter(r[0] for r in rows)

    def blocked_kill(self, table: Table, work: Callable[[], None]) -> BaseException | None:
        """Run ``work`` (a deletion) while a lock makes its write wait, then kill its
        connection, as an operator's failover or an OOM kill of the server process would."""
        raise NotImplementedError


class Sqlite(SqlBackend):
    kind = "sqlite"
    types = {
        "int": "INTEGER",
        "text": "TEXT",
        "real": "REAL",
        "sqlite_datetime": "DATETIME",
        "bytes": "BLOB",
        "tok": "TEXT",
    }

    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite:///{path}")
        self.path = path

    def connect(self) -> Any:
        return sqlite3.connect(self.path, timeout=30)

    def q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def ph(self) -> str:
        return "?"


class Postgres(SqlBackend):
    kind = "postgres"
    types = {
        "int": "integer",
        "bigint": "bigint",
        "text": "text",
        "char": "char(6)",
        "uuid": "uuid",
        "numeric": "numeric(12,3)",
        "float": "double precision",
        "date": "date",
        "time": "time",
        "timestamp": "timestamp",
        "timestamptz": "timestamptz",
        "bool": "boolean",
        "bytes": "bytea",
        "tok": "text",
    }

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"))

    def q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def blocked_kill(self, table: Table, work: Callable[[], None]) -> BaseException | None:
        import psycopg

        holder = psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"))
        holder.execute(f"LOCK TABLE {self.q(table.name)} IN SHARE MODE")
        me = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
        failure: list[BaseException] = []

        def target() -> None:
            try:
                work()
            except BaseException as exc:  # handed back to the hunt
                failure.append(exc)

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        killed = False
        with psycopg.connect(
            self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as watch:
            while worker.is_alive() and time.monotonic() < deadline and not killed:
                waiting = watch.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> %s",
                    (me,),
                ).fetchall()
                for (pid,) in waiting:
                    watch.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed = True
                time.sleep(0.02)
        holder.rollback()
        holder.close()
        worker.join(60)
        return failure[0] if failure else None


class MariaDb(SqlBackend):
    kind = "mysql"
    types = {
        "int": "INT",
        "bigint": "BIGINT",
        "text": "VARCHAR(20)",
        "char": "CHAR(6)",
        "numeric": "DECIMAL(12,3)",
        "float": "DOUBLE",
        "float32": "FLOAT",
        "date": "DATE",
        "time": "TIME",
        "timestamp": "DATETIME(6)",
        "bool": "BOOLEAN",
        "bytes": "VARBINARY(8)",
        "tok": "VARCHAR(64)",
    }

    def connect(self) -> Any:
        import pymysql
        import sqlalchemy as sa

        u = sa.engine.make_url(self.url)
        return pymysql.connect(
            host=u.host,
            port=u.port or 3306,
            user=u.username,
            password=u.password or "",
            database=u.database,
            charset="utf8mb4",
        )

    def q(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def blocked_kill(self, table: Table, work: Callable[[], None]) -> BaseException | None:
        holder = self.connect()
        cur = holder.cursor()
        cur.execute(f"LOCK TABLES {self.q(table.name)} READ")
        cur.execute("SELECT CONNECTION_ID()")
        me = cur.fetchone()[0]
        failure: list[BaseException] = []

        def target() -> None:
            try:
                work()
            except BaseException as exc:  # handed back to the hunt
                failure.append(exc)

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        killed = False
        watch = self.connect()
        try:
            wcur = watch.cursor()
            while worker.is_alive() and time.monotonic() < deadline and not killed:
                wcur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                    "AND STATE LIKE 'Waiting%%' AND ID <> %s",
                    (me,),
                )
                for (pid,) in wcur.fetchall():
                    with contextlib.suppress(Exception):
                        wcur.execute(f"KILL {int(pid)}")
                        killed = True
                time.sleep(0.02)
        finally:
            watch.close()
        cur.execute("UNLOCK TABLES")
        holder.close()
        worker.join(60)
        return failure[0] if failure else None


# ---------------------------------------------------------------------- files


@dataclass
class Folder:
    """A folder tree of CSV files, documents and workbooks, and an outside folder that a
    symbolic link may point into (nothing there may ever be touched)."""

    root: Path
    outside: Path
    counter: list[int] = field(default_factory=lambda: [0])

    def path(self, f: File) -> Path:
        return Path(os.fsencode(self.root).decode("utf-8", "surrogateescape"), *f.path)

    def write(self, f: File, tokens: list[list[str]]) -> None:
        """``tokens``: one list per sheet (one list for CSV; one token for a document)."""
        target = self.path(f)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, f.kind, f.sheets, tokens)

    def tokens(self, f: File) -> Counter[str]:
        return file_tokens(self.path(f), f.kind)


def write_file(target: Path, kind: str, sheets: tuple[str, ...], tokens: list[list[str]]) -> None:
    if kind == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([TOK, "val"])
        for i, t in enumerate(tokens[0]):
            w.writerow([t, f"v{i}"])
        target.write_bytes(buf.getvalue().encode())
    elif kind == "doc":
        target.write_bytes(("document " + " ".join(tokens[0])).encode())
    else:
        import openpyxl

        book = openpyxl.Workbook()
        book.remove(book.active)
        for name, toks in zip(sheets, tokens, strict=True):
            ws = book.create_sheet(name)
            ws.append([TOK, "val"])
            for i, t in enumerate(toks):
                ws.append([t, f"v{i}"])
        book.save(target)


def file_tokens(target: Path, kind: str) -> Counter[str]:
    try:
        if target.is_symlink() or not target.is_file():
            return Counter()
        raw = target.read_bytes()
    except OSError:
        return Counter()
    return bytes_tokens(raw, kind)


def bytes_tokens(raw: bytes, kind: str) -> Counter[str]:
    """Tokens in a file's bytes (CSV, document or workbook), or in a backup's plaintext."""
    if kind == "doc":
        return Counter(w for w in raw.decode(errors="replace").split() if w.startswith("k"))
    if kind == "xlsx":
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True)
        except Exception:  # not a workbook any more
            return Counter()
        out: Counter[str] = Counter()
        for ws in book.worksheets:
            for row in ws.iter_rows(values_only=True):
                if row and isinstance(row[0], str) and row[0].startswith("k"):
                    out[row[0]] += 1
        book.close()
        return out
    return csv_tokens(raw)


def csv_tokens(raw: bytes) -> Counter[str]:
    """The tokens of a CSV (a source file or a backup), read with the standard csv module:
    the column named ``tok``."""
    rows = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))
    header = next(rows, None)
    if not header or TOK not in header:
        return Counter()
    at = header.index(TOK)
    return Counter(r[at] for r in rows if len(r) > at and r[at])


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
