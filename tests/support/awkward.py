"""A PostgreSQL table of the values that break naive CSV: NULL vs empty, quotes, newlines,
bytes, time zones, odd floats."""

from __future__ import annotations

import psycopg

AWKWARD = [
    (1, "plain", "", b"\x00\x01", True, "2024-02-29 23:59:59+00", None),
    (2, 'quote " and, comma', None, None, False, None, 1.5),
    (3, "line\nbreak 中文", "x", b"", None, "1999-12-31 00:00:00+08", -0.0),
    (4, None, '"', b"\xff", True, "2024-01-01 00:00:00+00", 1e300),
]


def awkward_table(pg_url: str, name: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id integer PRIMARY KEY, a text, b varchar(10), c bytea, "
            "d boolean, e timestamptz, f double precision)"
        )
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s, %s)", AWKWARD)
