"""Peak RSS and CPU time of a full PostgreSQL inventory scan for several COPY block sizes.

    .venv/bin/python bench/inventory_block_rss.py --db bench_mem [--rows 600000] [--mib 1 8]

Loads the benchmark's ``customers`` table (inventory_bench.load_table) into ``--db`` unless
it exists, then scans it with ``scan_dataset`` once per block size, each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = """
import resource, sys, time
sys.path.insert(0, {include!r})
import retirement.sources.pg_arrow as pg_arrow
pg_arrow.BLOCK_BYTES = {mib} << 20
from retirement.inventory.scan import scan_dataset
from retirement.plan.policy import ClassificationPolicy
from retirement.sources.sql import SqlSource
src = SqlSource("pg", "postgresql://postgres@127.0.0.1:5432/{db}")
(ref,) = src.datasets()
t, w = time.process_time(), time.perf_counter()
rep = scan_dataset(src, ref, ClassificationPolicy.default())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
cpu, wall = time.process_time() - t, time.perf_counter() - w
print(f"| {mib} MiB | {{rep.rows:,}} | {{rss}} | {{cpu:.1f}} | {{wall:.1f}} |")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    ap.add_argument("--db", default="bench_mem")
    ap.add_argument("--rows", type=int, default=600_000)
    ap.add_argument("--mib", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "include"))
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.db,)).fetchone()
    if not exists:
        from inventory_bench import load_table

        load_table(args.db, args.rows)
    print(f"load average {os.getloadavg()}")
    print("| block | rows | peak RSS MB | CPU s | wall s |\n|---|---:|---:|---:|---:|")
    for mib in args.mib:
        code = CODE.format(include=str(ROOT / "include"), mib=mib, db=args.db)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
