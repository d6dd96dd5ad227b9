"""The demo company's CRM copied into a PostgreSQL database (same tables, rows and keys)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from pathlib import Path


def load_crm(crm: Path, pg_url: str) -> dict[str, int]:
    """Copy every table of the demo's SQLite CRM into ``pg_url``; each table's row count."""
    counts = {}
    with sqlite3.connect(crm) as lite, psycopg.connect(pg_url, autocommit=True) as pg:
        for table, ddl in lite.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"):
            pg.execute(ddl.replace("INTEGER", "BIGINT").replace("REAL", "DOUBLE PRECISION"))
            rows = lite.execute(f'SELECT * FROM "{table}"').fetchall()
            marks = ",".join(["%s"] * len(rows[0]))
            with pg.cursor() as cur:
                cur.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
            counts[table] = len(rows)
    return counts


def pg_counts(pg_url: str, tables: list[str]) -> dict[str, int]:
    with psycopg.connect(pg_url) as pg:
        return {t: pg.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
