"""Scale: a generated organization with many tables and files, run by a real Airflow.

    .venv/bin/python bench/scale_bench.py [--tables 2000] [--files 100000] [--max-tasks 64]

Generates a PostgreSQL database of ``--tables`` small customer tables (20 rows each: name,
mobile, e-mail, resident ID) and a folder of ``--files`` small CSV exports, writes a plan
(PostgreSQL and files sources; local archive and successor folders; auto-approval;
``mapping.max_tasks``), starts Airflow's processes one by one (API server, scheduler, DAG
processor, triggerer; LocalExecutor; PostgreSQL metadata database, the test suite's
``tests/e2e/stack.py``), triggers the DAG over the REST API and waits for it.

Reports, from the task instances the REST API returns: the wall time of each step (first
start to last end), the tasks' own run time, and the scheduler's overhead: the run's wall
time not covered by any running task, and the mean wait from queued to running.
Results go to stdout and to bench/RESULTS.md ("## Scale").
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from bench.backup_bench import write_section  # noqa: E402
from retirement.crypto.keys import KeyStore  # noqa: E402
from retirement.demo import mobile, resident_id  # noqa: E402
from tests.e2e.stack import AirflowStack, airflow_env  # noqa: E402
from tests.servers.databases import create_pg_database, drop_pg_database  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

DAG = "retire__scale"


def generate(pg_url: str, tables: int, files: int, folder: Path, rng: random.Random) -> None:
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for t in range(tables):
            name = f"t{t:05d}"
            pg.execute(
                f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, name TEXT, mobile TEXT, "
                "email TEXT, id_card TEXT)"
            )
            rows = [
                (i, f"客户{t}-{i}", mobile(rng), f"c{t}.{i}@example.cn", resident_id(rng))
                for i in range(20)
            ]
            with pg.cursor() as cur:
                cur.executemany(f"INSERT INTO {name} VALUES (%s,%s,%s,%s,%s)", rows)
    for f in range(files):
        sub = folder / f"d{f // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        lines = ["customer,mobile,note"] + [
            f"c{f}-{i},{mobile(rng)},callback requested" for i in range(5)
        ]
        (sub / f"export_{f:06d}.csv").write_text("\n".join(lines) + "\n")


def plan(folder: Path, max_tasks: int) -> Path:
    demo = yaml.safe_load((ROOT / "include" / "plans" / "demo.yaml").read_text())
    demo.update(
        name="scale",
        title="Scale benchmark",
        sources=[
            {"name": "db", "kind": "postgres", "connection": "scale_db"},
            {"name": "exports", "kind": "files", "connection": "scale_exports"},
        ],
        datasets=[],
        mapping={"max_tasks": max_tasks},
        customer_keys={},  # generated tables: no column names a customer
    )
    folder.mkdir()
    # the demo's impact assessment, which its plan names by a path beside the plan
    shutil.copytree(ROOT / "include" / "plans" / "assessments", folder / "assessments")
    (folder / "scale.yaml").write_text(yaml.safe_dump(demo, allow_unicode=True))
    return folder


def _t(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def measure(tis: list[dict], run: dict) -> tuple[list[tuple], dict]:
    rows = []
    ran = [t for t in tis if t["start_date"] and t["end_date"]]
    first: dict[str, float] = {}
    for t in ran:  # the steps in the order they started (the DAG's order)
        first[t["task_id"]] = min(first.get(t["task_id"], 1e18), _t(t["start_date"]))
    for step in sorted(first, key=first.__getitem__):
        mine = [t for t in ran if t["task_id"] == step]
        start = min(_t(t["start_date"]) for t in mine)
        end = max(_t(t["end_date"]) for t in mine)
        rows.append((step, len(mine), end - start, sum(t["duration"] or 0 for t in mine)))
    spans = sorted(
        (_t(t["start_date"]), _t(t["end_date"])) for t in tis if t["start_date"] and t["end_date"]
    )
    covered, cur_start, cur_end = 0.0, None, None
    for s, e in spans:  # union of the intervals in which some task ran
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        covered += cur_end - cur_start
    wall = _t(run["end_date"]) - _t(run["start_date"])
    waits = [
        _t(t["start_date"]) - _t(t["queued_when"])
        for t in tis
        if t["queued_when"] and t["start_date"] and _t(t["start_date"]) >= _t(t["queued_when"])
    ]
    return rows, {
        "wall": wall,
        "idle": wall - covered,
        "mean_wait": sum(waits) / max(1, len(waits)),
        "tasks": len(tis),
    }


def run_scale(
    tables: int,
    files: int,
    max_tasks: int,
    parallelism: int,
    check: Callable[[dict], None] | None = None,
) -> dict:
    """Generate, run and measure; ``check(facts)`` looks at the result before teardown."""
    tmp = Path(tempfile.mkdtemp(prefix="retirement-scale-"))
    meta, source = create_pg_database("scale_meta"), create_pg_database("scale_src")
    ledger = create_pg_database("scale_ledger")
    stack = None
    try:
        t0 = time.monotonic()
        generate(source, tables, files, tmp / "exports", random.Random(7))
        generated = time.monotonic() - t0
        print(f"generated {tables} tables and {files} files in {generated:.0f} s")
        master = KeyStore.new_master_key(tmp / "keys" / "master.key")
        pg = psycopg.conninfo.conninfo_to_dict(source)
        connections = {
            "retirement_ledger": {
                "conn_type": "postgres",
                "host": pg["host"],
                "port": int(pg["port"]),
                "login": pg["user"],
                "schema": psycopg.conninfo.conninfo_to_dict(ledger)["dbname"],
                "extra": {"output_dir": str(tmp / "out")},
            },
            "retirement_keys": {
                "conn_type": "generic",
                "password": master,
                "extra": {"path": str(tmp / "keys")},
            },
            "scale_db": {
                "conn_type": "postgres",
                "host": pg["host"],
                "port": int(pg["port"]),
                "login": pg["user"],
                "schema": pg["dbname"],
            },
            "scale_exports": {"conn_type": "fs", "extra": {"path": str(tmp / "exports")}},
        }
        env = airflow_env(
            tmp / "airflow",
            executor="LocalExecutor",
            metadata_url=meta.replace("postgresql://", "postgresql+psycopg2://"),
            connections=connections,
            plans_dir=plan(tmp / "plans", max_tasks),
            parallelism=parallelism,
        )
        env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = "1024"
        stack = AirflowStack(tmp / "airflow", env)
        stack.start()
        stack.wait_dag(DAG)
        run_id = stack.trigger(DAG)
        state = stack.wait_run(DAG, run_id, timeout=4 * 3600)
        run = stack.api("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}").json()
        tis = stack.task_instances(DAG, run_id)
        rows, totals = measure(tis, run)
        if check is not None:
            check(
                {
                    "state": state,
                    "run_id": f"{DAG}:{run_id}",
                    "task_instances": tis,
                    "ledger_url": sa.engine.make_url(ledger)
                    .set(drivername="postgresql+psycopg")
                    .render_as_string(hide_password=False),
                    "source_url": source,
                    "exports": tmp / "exports",
                }
            )
    finally:
        if stack is not None:
            stack.stop()
        for url in (meta, source, ledger):
            drop_pg_database(url)
    return {"state": state, "rows": rows, "totals": totals, "generated": generated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--max-tasks", type=int, default=64)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    got = run_scale(args.tables, args.files, args.max_tasks, args.parallelism)
    state, rows, totals, generated = got["state"], got["rows"], got["totals"], got["generated"]
    datasets = args.tables + args.files
    lines = [
        "## Scale",
        "",
        f"`.venv/bin/python bench/scale_bench.py --tables {args.tables} --files {args.files} "
        f"--max-tasks {args.max_tasks} --parallelism {args.parallelism}`, {date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
        f"Run state: **{state}**; {datasets:,} datasets; LocalExecutor, "
        f"`[core] parallelism` {args.parallelism}, `max_map_length` 1024, plan "
        f"`mapping.max_tasks` {args.max_tasks}; PostgreSQL ledger, local destinations.",
        "",
        "| step | tasks | wall s | task time s |",
        "|---|---:|---:|---:|",
        *(f"| {s} | {n} | {w:.1f} | {d:.1f} |" for s, n, w, d in rows),
        "",
        f"Whole run {totals['wall']:.0f} s over {totals['tasks']} task instances; "
        f"no task running for {totals['idle']:.0f} s of it (the scheduler's overhead between "
        f"steps); mean wait from queued to running {totals['mean_wait']:.1f} s. "
        f"Generating the organization took {generated:.0f} s (not in the run).",
        "",
    ]
    print("\n".join(lines))
    if not args.no_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## Scale", "\n".join(lines))


if __name__ == "__main__":
    main()
