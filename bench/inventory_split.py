"""The inventory's full scan with and without its worker process (issue 19, "use both cores").

    .venv/bin/python bench/inventory_split.py [--db wt_split_bench] [--rows 1000000] [--runs 3]

Builds the benchmark table of bench/inventory_bench.py (``load_table``: ``--rows`` rows x 10
columns) when the database does not exist, then scans it with ``scan_dataset`` (full) in a
fresh process per run, alternating RETIREMENT_SCAN_WORKERS=0 and 1: wall time, CPU time of the
scanning process and of its worker, peak RSS of each, the load average before and after (the
machine may be shared), and whether both reports are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from inventory_bench import PG, load_table  # noqa: E402

SCAN = """
import hashlib, json, os, resource, sys, time
sys.path.insert(0, {include!r})
from retirement.inventory.scan import scan_dataset
from retirement.plan.policy import ClassificationPolicy
from retirement.sources.sql import SqlSource
src = SqlSource("pg", {url!r})
(ref,) = src.datasets()
before = os.getloadavg()
wall, cpu = time.perf_counter(), time.process_time()
rep = scan_dataset(src, ref, ClassificationPolicy.default(), full=True)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{
    "wall": wall, "cpu": cpu, "worker_cpu": kids.ru_utime + kids.ru_stime,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": kids.ru_maxrss / 1024, "rows": rep.rows,
    "load": [before, os.getloadavg()],
    "report": hashlib.sha256(json.dumps(rep.to_json()).encode()).hexdigest(),
}}))
"""


def exists(db: str) -> bool:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()


def scan(db: str, workers: str) -> dict:
    code = SCAN.format(include=str(ROOT / "include"), url=f"{PG}/{db}")
    env = {**os.environ, "RETIREMENT_SCAN_WORKERS": workers}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default="wt_split_bench")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not exists(args.db):
        print(f"loading {args.rows:,} rows into {args.db}: {load_table(args.db, args.rows):.1f} s")
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        "| worker | wall s | CPU s (scan + worker) | peak RSS MB (scan / worker) "
        "| load before -> after |"
    )
    print("|---|---:|---:|---:|---|")
    reports = set()
    for _ in range(args.runs):
        for workers in ("0", "1"):
            r = scan(args.db, workers)
            reports.add(r["report"])
            (b, a) = r["load"]
            print(
                f"| {'yes' if workers == '1' else 'no'} | {r['wall']:.2f} | "
                f"{r['cpu'] + r['worker_cpu']:.2f} ({r['cpu']:.2f} + {r['worker_cpu']:.2f}) | "
                f"{r['rss_mb']:.0f} / {r['worker_rss_mb']:.0f} | "
                f"{b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f} -> {a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f} |",
                flush=True,
            )
    print("reports identical:", len(reports) == 1)


if __name__ == "__main__":
    main()
