"""The end-to-end part of inventory_bench.py: one generated table as a PostgreSQL table, a
MariaDB table and a folder of CSV and JSON-lines files, each fully scanned (``scan_dataset``
in a fresh process) against the standard client reading the same data.

The rows are generated once into a CSV file (``inventory_bench.customer_row``), loaded with
COPY (PostgreSQL) and LOAD DATA (MariaDB), and cut into the folder's files. Peers:
``pg_dump -t customers DB > /dev/null``, ``mysql --quick -e 'select * from customers' >
/dev/null``, ``cat FILES > /dev/null``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
MY = "mysql://root@127.0.0.1:3306"
COLUMNS = [
    "id",
    "name",
    "id_card",
    "mobile",
    "email",
    "address",
    "card_no",
    "ip",
    "remark",
    "amount",
]
TABLE = (
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text, id_card text, mobile text, "
    "email text, address text, card_no text, ip text, remark text, amount {decimal})"
)

if TYPE_CHECKING:
    from collections.abc import Callable


def load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def write_rows(path: Path, rows: int, row: Callable[[random.Random, int], tuple]) -> float:
    """``rows`` generated rows as CSV with a header; seconds taken."""
    start = time.perf_counter()
    rng = random.Random(3)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(row(rng, i) for i in range(rows))
    return time.perf_counter() - start


def _psql(db: str, *args: str, stdin: object = None) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, f"{PG}/{db}"],
                   check=True, stdin=stdin)  # fmt: skip


def load_pg(db: str, data: Path, rows: int | None = None) -> float:
    """A fresh database ``db`` with ``customers`` from ``data`` (its first ``rows`` rows)."""
    start = time.perf_counter()
    _psql("postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"')
    _psql("postgres", "-c", f'CREATE DATABASE "{db}"')
    _psql(db, "-c", TABLE.format(decimal="numeric"))
    source = f"head -n {rows + 1} {data}" if rows else f"cat {data}"
    copy = "\\copy customers FROM STDIN WITH (FORMAT csv, HEADER true)"
    subprocess.run(
        ["bash", "-c", f"{source} | psql -X -q -v ON_ERROR_STOP=1 -c '{copy}' {PG}/{db}"],
        check=True,
    )
    _psql(db, "-c", "VACUUM ANALYZE customers")
    return time.perf_counter() - start


def load_my(db: str, data: Path) -> float:
    start = time.perf_counter()
    sql = (
        f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4; "
        f"USE `{db}`; {TABLE.format(decimal='decimal(12,2)')}; "
        f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE customers CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' "
        "IGNORE 1 LINES;"
    )
    subprocess.run(
        ["mysql", "-h", "127.0.0.1", "-u", "root", "--local-infile=1", "-e", sql], check=True
    )
    return time.perf_counter() - start


def make_folder(folder: Path, data: Path, csv_copies: int, jsonl_rows: int) -> dict:
    """``csv_copies`` copies of the CSV cut in files of about 256 MiB (each with the
    header), and the first ``jsonl_rows`` rows as JSON lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    header = data.open(encoding="utf-8").readline()
    part, size, n = None, 0, 0
    for copy in range(csv_copies):
        with data.open(encoding="utf-8") as rows:
            next(rows)
            for line in rows:
                if part is None or size >= 256 << 20:
                    if part is not None:
                        part.close()
                    n += 1
                    part = (folder / f"customers_{copy}_{n:03d}.csv").open("w", encoding="utf-8")
                    part.write(header)
                    size = len(header)
                part.write(line)
                size += len(line.encode())
        if part is not None:
            part.close()
            part = None
    with (
        data.open(encoding="utf-8", newline="") as rows,
        (folder / "customers.jsonl").open("w", encoding="utf-8") as out,
    ):
        reader = csv.reader(rows)
        names = next(reader)
        for i, row in enumerate(reader):
            if i >= jsonl_rows:
                break
            out.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n")
    files = sorted(folder.iterdir())
    return {
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "csv_bytes": sum(f.stat().st_size for f in files if f.suffix == ".csv"),
        "jsonl_bytes": (folder / "customers.jsonl").stat().st_size,
    }


_SCAN = """
import json, os, resource, sys, time
sys.path.insert(0, {include!r})
from retirement.inventory.scan import scan_dataset
from retirement.plan.policy import ClassificationPolicy
kind, where, full = {kind!r}, {where!r}, {full!r}
if kind == "files":
    from retirement.sources.files import FileSource
    source = FileSource("files", where)
else:
    from retirement.sources.sql import SqlSource
    source = SqlSource("db", where)
refs = [r for r in source.datasets() if kind == "files" or r.name == "customers"]
policy = ClassificationPolicy.default()
out = {{"rows": 0, "parts": {{}}}}
def peak_mb():  # this process's own peak since exec: ru_maxrss keeps the parent's at fork
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
wall, cpu = time.perf_counter(), time.process_time()
for ref in refs:
    t = time.perf_counter()
    rep = scan_dataset(source, ref, policy, full=full)
    out["rows"] += rep.rows
    part = out["parts"].setdefault(ref.name.rsplit(".", 1)[-1], {{"seconds": 0.0, "rows": 0}})
    part["seconds"] += time.perf_counter() - t
    part["rows"] += rep.rows
    out["detected"] = {{c.name: c.detected for c in rep.columns}}
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
out.update(seconds=time.perf_counter() - wall, cpu=time.process_time() - cpu,
           children_cpu=kids.ru_utime + kids.ru_stime, children_rss_mb=kids.ru_maxrss / 1024,
           rss_mb=peak_mb(),
           load="{{:.1f}}/{{:.1f}}/{{:.1f}}".format(*os.getloadavg()))
print(json.dumps(out))
"""


def scan(kind: str, where: str, *, full: bool = True, workers: bool = True) -> dict:
    """Scan the table ``customers`` (``kind`` "sql", ``where`` a URL) or every file of a folder
    (``kind`` "files") in a fresh process: seconds, rows, CPU and peak RSS of the process and
    of its children (the scan worker, psql)."""
    code = _SCAN.format(include=str(ROOT / "include"), kind=kind, where=where, full=full)
    env = {**os.environ, "RETIREMENT_SCAN_WORKERS": "1" if workers else "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer(argv: list[str]) -> dict:
    """Seconds of a standard client writing the data to /dev/null, and the load after."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(argv, stdout=null, check=True)
    return {"seconds": time.perf_counter() - start, "load": load()}


def pg_dump(db: str) -> dict:
    return peer(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-t", "customers", db])


def mysql_quick(db: str) -> dict:
    select = "SELECT * FROM customers"
    return peer(["mysql", "--quick", "-h", "127.0.0.1", "-u", "root", db, "-e", select])


def cat(folder: Path) -> dict:
    return peer(["cat", *[str(p) for p in sorted(folder.iterdir())]])


def drop(pg: list[str], my: list[str]) -> None:
    for db in pg:
        _psql("postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"')
    for db in my:
        subprocess.run(
            ["mysql", "-h", "127.0.0.1", "-u", "root", "-e", f"DROP DATABASE IF EXISTS `{db}`"],
            check=True,
        )
