"""Reading a whole table as Arrow columns (the inventory's full scan, without detection) against
the database's own dump tool on the same table.

    .venv/bin/python bench/column_read.py --rows 1000000 [--keep] [--reuse] [--write]

What is timed is the inventory's reading, ``column_batches`` (no detection), each reader in a
fresh process. PostgreSQL: ``sources.pg_arrow.copy_columns`` through psql and through psycopg
(psql hidden), against ``pg_dump -t customers DB > /dev/null`` and psql writing the same COPY
to /dev/null (what the server can send: the floor for any reader). MariaDB (the same rows,
loaded with LOAD DATA): the columnar path (``sources.mysql_arrow``) and the row path (pymysql
rows turned into string columns), against ``mysql --quick -e 'select * from customers' >
/dev/null``. Wall seconds, this process's CPU seconds (``time.process_time``) and its
children's (``resource.getrusage(RUSAGE_CHILDREN)``: psql, pg_dump, mysql). The database
server's own CPU is in none of them. The table is ``inventory_bench.load_table``'s: 10 columns.
Results go to stdout and, with ``--write``, to bench/RESULTS.md ("## Column reading").
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT / "bench"))

PG = "postgresql://postgres@127.0.0.1:5432"
MY = "mysql://root@127.0.0.1:3306"
PG_COPY = (
    "COPY (SELECT id, name, id_card, mobile, email, address, card_no, ip, remark, amount "
    "FROM customers) TO STDOUT WITH (FORMAT csv)"
)

_READ = """
import json, resource, shutil, sys, time
sys.path.insert(0, {include!r})
if {hide_psql!r}:
    shutil.which = lambda *a, **k: None
from retirement.inventory.columns import column_batches
from retirement.sources.sql import SqlSource
with SqlSource("bench", {url!r}) as source:
    source.table("customers")  # reflected before the clock starts
    (ref,) = [r for r in source.datasets() if r.name == "customers"]
    wall, cpu = time.perf_counter(), time.process_time()
    rows = cells = 0
    for batch in column_batches(source, ref, 10_000, full={full!r}):
        rows += len(batch[0])
        cells += sum(len(a) - a.null_count for a in batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"wall": wall, "cpu": cpu, "children_cpu": kids.ru_utime + kids.ru_stime,
    "rows": rows, "cells": cells,
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def read_in_subprocess(url: str, *, hide_psql: bool = False, full: bool = True) -> dict[str, float]:
    """The inventory's reading (``column_batches``: columns where the source reads them, else
    rows turned into string columns), in a fresh process."""
    code = _READ.format(include=str(ROOT / "include"), hide_psql=hide_psql, url=url, full=full)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def tool_seconds(argv: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of a command whose output goes to /dev/null."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    with open("/dev/null", "wb") as null:
        subprocess.run(argv, check=True, stdout=null)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": 0.0, "children_cpu": cpu}


def pg_rows(db: str) -> int:
    import psycopg

    try:
        with psycopg.connect(f"{PG}/{db}") as conn:
            row = conn.execute("SELECT count(*) FROM customers").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else -1


def load_mariadb(db: str, pg_db: str) -> None:
    """The PostgreSQL table's rows in a MariaDB table of the same columns (LOAD DATA)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as data:
        copy = "COPY customers TO STDOUT WITH (FORMAT csv)"
        subprocess.run(["psql", "-X", "-q", "-c", copy, f"{PG}/{pg_db}"], check=True, stdout=data)
        sql = (
            f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4; "
            f"USE `{db}`; CREATE TABLE customers (id bigint PRIMARY KEY, name text, "
            "id_card text, mobile text, email text, address text, card_no text, ip text, "
            "remark text, amount decimal(12,2)); "
            f"LOAD DATA LOCAL INFILE '{data.name}' INTO TABLE customers CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n';"
        )
        subprocess.run(
            ["mysql", "-h", "127.0.0.1", "-u", "root", "--local-infile=1", "-e", sql], check=True
        )


def my_rows(db: str) -> int:
    out = subprocess.run(
        [
            "mysql",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-e",
            f"SELECT count(*) FROM `{db}`.customers",
        ],
        capture_output=True,
        text=True,
    )
    return int(out.stdout) if out.returncode == 0 else -1


def line(name: str, r: dict[str, float]) -> str:
    return (
        f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['children_cpu']:.2f} | "
        f"{r.get('rss_mib', 0):.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pg-db", default="bench_column_read")
    ap.add_argument("--reuse", action="store_true", help="keep a table of --rows rows if there")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each reader (best kept)")
    ap.add_argument("--my-db", default="bench_column_read")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    from inventory_bench import load_table

    if not (args.reuse and pg_rows(args.pg_db) == args.rows):
        load_table(args.pg_db, args.rows)
    url = f"{PG}/{args.pg_db}"
    results: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for name, run in (
            ("copy_columns, psql", lambda: read_in_subprocess(url, hide_psql=False)),
            ("copy_columns, psycopg", lambda: read_in_subprocess(url, hide_psql=True)),
            (
                "pg_dump -t customers > /dev/null",
                lambda: tool_seconds(["pg_dump", "-t", "customers", url]),
            ),
            (
                "psql -c 'COPY (SELECT ...) TO STDOUT (FORMAT csv)' > /dev/null",
                lambda: tool_seconds(["psql", "-X", "-q", "-c", PG_COPY, url]),
            ),
        ):
            r = run()
            if name not in results or r["wall"] < results[name]["wall"]:
                results[name] = r
    if not (args.reuse and my_rows(args.my_db) == args.rows):
        load_mariadb(args.my_db, args.pg_db)
    my_url = f"{MY}/{args.my_db}?charset=utf8mb4"
    mysql = ["mysql", "-h", "127.0.0.1", "-u", "root", "--quick", args.my_db]
    my_results: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for name, run in (
            ("columns (server CSV lines, mysqlclient)", lambda: read_in_subprocess(my_url)),
            ("rows (pymysql, to_strings)", lambda: read_in_subprocess(my_url, full=False)),
            (
                "mysql --quick -e 'select * from customers' > /dev/null",
                lambda: tool_seconds([*mysql, "-e", "select * from customers"]),
            ),
        ):
            r = run()
            if name not in my_results or r["wall"] < my_results[name]["wall"]:
                my_results[name] = r
    lines = [
        "## Column reading",
        "",
        f"`.venv/bin/python bench/column_read.py --rows {args.rows}` (best of {args.repeat}; "
        "CPU: the reading process, children: psql / pg_dump / mysql; the server's own CPU in "
        "neither)",
        "",
        f"PostgreSQL, {args.rows:,} rows x 10 columns:",
        "",
        "| reader | wall s | CPU s | children CPU s | peak RSS MiB |",
        "|---|---|---|---|---|",
        *(line(name, r) for name, r in results.items()),
        "",
        f"MariaDB, the same {args.rows:,} rows (text columns, DECIMAL(12,2)):",
        "",
        "| reader | wall s | CPU s | children CPU s | peak RSS MiB |",
        "|---|---|---|---|---|",
        *(line(name, r) for name, r in my_results.items()),
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.write:
        from inventory_bench import write_section

        write_section(ROOT / "bench" / "RESULTS.md", "## Column reading", text)
    if not args.keep:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{args.pg_db}"')
        drop = f"DROP DATABASE IF EXISTS `{args.my_db}`"
        subprocess.run(["mysql", "-h", "127.0.0.1", "-u", "root", "-e", drop], check=True)


if __name__ == "__main__":
    main()
