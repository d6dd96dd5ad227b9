"""Backup benchmark: our streaming backup against the standard shell pipelines.

    .venv/bin/python bench/backup_bench.py [--rows 6000000] [--folder-mib 1024]

1. A PostgreSQL table of ``--rows`` rows (about 1 GiB at the default) backed up with
   ``back_up`` (COPY -> CSV -> zstd -1 -> age, row digest and profile on the way) against
   ``pg_dump -t customers | zstd -1 | age -r KEY``.
2. A folder of ``--folder-mib`` MiB of mixed files (text logs, JSON, incompressible
   binaries) backed up file by file with ``back_up`` against ``tar c DIR | zstd -1 | age``.

Each run happens in a fresh process so that its peak RSS is its own; for the shell
pipelines it is the largest process of the pipeline. Both sides fsync their output
(ours before it renames a backup to its final name; the shell with ``sync FILE``).
Results go to stdout and to bench/RESULTS.md ("## Backup").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"
DB = "bench_backup"


def load_table(rows: int) -> tuple[float, int]:
    """A customers table generated inside PostgreSQL; returns (seconds, bytes on disk)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}"')
        admin.execute(f'CREATE DATABASE "{DB}"')
    start = time.perf_counter()
    with psycopg.connect(f"{PG}/{DB}", autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE customers AS SELECT
              i AS id,
              (ARRAY['王','李','张','刘','陈'])[1 + i %% 5] || '客户' || i AS name,
              '110101' || to_char(date '1950-01-01' + (i %% 20000), 'YYYYMMDD')
                || lpad((i %% 1000)::text, 3, '0') || (i %% 10) AS id_card,
              '13' || lpad((i::bigint * 7919 %% 1000000000)::text, 9, '0') AS mobile,
              'user' || i || '@example.com' AS email,
              '上海市浦东新区世纪大道' || (i %% 999 + 1) || '号 ' || md5(i::text) AS address,
              CASE WHEN i %% 3 = 0 THEN NULL ELSE '物流太慢, "加急" ' || md5((i * 3)::text) END
                AS remark,
              (i %% 100000) / 100.0 AS amount,
              timestamptz '2020-01-01' + (i %% 100000) * interval '1 minute' AS created_at
            FROM generate_series(1, %s) AS i
            """,
            (rows,),
        )
        conn.execute("ALTER TABLE customers ADD PRIMARY KEY (id)")
        conn.execute("VACUUM ANALYZE customers")
        size = conn.execute("SELECT pg_total_relation_size('customers')").fetchone()[0]
    return time.perf_counter() - start, int(size)


def make_folder(root: Path, mib: int) -> int:
    """Mixed files: 40% text logs, 20% JSON lines, 40% random binaries; returns bytes."""
    rng = random.Random(5)
    root.mkdir(parents=True)
    total, i = 0, 0
    target = mib << 20
    while total < target:
        size = min(rng.randrange(1 << 20, 24 << 20), target - total)
        kind = i % 5
        path = root / f"f{i:04d}.{['log', 'log', 'json', 'pdf', 'bin'][kind]}"
        with path.open("wb") as f:
            if kind < 3:
                line = (
                    f'{{"n": {i}, "msg": "客户 13812345678 来电 order {rng.random()}"}}\n'
                    if kind == 2
                    else f"2026-11-23 10:00:{i % 60:02d} INFO user{i}@example.com {rng.random()}\n"
                ).encode()
                block = line * (65536 // len(line) + 1)
                written = 0
                while written < size:
                    part = block[: size - written]
                    f.write(part)
                    written += len(part)
            else:
                written = 0
                while written < size:
                    part = os.urandom(min(1 << 20, size - written))
                    f.write(part)
                    written += len(part)
        total += size
        i += 1
    return total


_CPU = """
def _cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
"""


def in_fresh_process(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON line, we add its peak RSS.
    ``cpu_s``: CPU seconds of the process and every process it waited for (psql, a
    pipeline's commands) from its first ``t = time.perf_counter()`` to its end; not the
    database server's, which both sides use alike."""
    marker = "t = time.perf_counter()"
    timed = marker in code
    if timed:
        code = code.replace(marker, marker + "; _cpu0 = _cpu()", 1)
        code += '\nprint(json.dumps({"cpu_s": _cpu() - _cpu0}))\n'
    wrapper = (
        f"import json, resource, sys, time\nsys.path.insert(0, {str(ROOT / 'include')!r})\n"
        + _CPU
        + code
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    lines = done.stdout.strip().splitlines()
    if not timed:
        return json.loads(lines[-1])
    return {**json.loads(lines[-2]), **json.loads(lines[-1])}


OURS_COMMON = """
from pathlib import Path
from retirement.vault.write import back_up
from retirement.crypto.keys import KeyStore
keys = KeyStore(Path({keys!r}), {master!r})
def run(source, name, kind, key=()):
    return back_up(source, name, qualified=source.name + "." + name, kind=kind, plan="bench",
        disposition="erase", recipients=[keys.archive_key("bench", "erase").recipient],
        out_dir=Path({out!r}), signing_key=keys.signing_key(),
        created_at="2026-11-23T00:00:00Z", key_columns=key)
"""


def ours_table(keys: Path, master: str, out: Path, url: str = f"{PG}/{DB}") -> dict:
    """``back_up`` of the table ``customers`` at ``url`` in a fresh process."""
    code = (
        OURS_COMMON.format(keys=str(keys), master=master, out=str(out))
        + f"""
from retirement.sources.sql import SqlSource
src = SqlSource("db", {url!r})
t = time.perf_counter()
r = run(src, "customers", "table", ("id",))
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "plain": r.manifest.plaintext_size,
    "cipher": r.manifest.ciphertext_size, "rows": r.manifest.fingerprint.rows,
    "manifest": str(r.manifest_path), "ciphertext": str(r.ciphertext_path),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    )
    return in_fresh_process(code)


def ours_folder(keys: Path, master: str, out: Path, folder: Path) -> dict:
    code = (
        OURS_COMMON.format(keys=str(keys), master=master, out=str(out))
        + f"""
from retirement.sources.files import FileSource
src = FileSource("files", Path({str(folder)!r}))
refs = src.datasets()
t = time.perf_counter()
plain = cipher = 0
for ref in refs:
    r = run(src, ref.name, ref.kind)
    plain += r.manifest.plaintext_size
    cipher += r.manifest.ciphertext_size
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "plain": plain, "cipher": cipher, "files": len(refs),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    )
    return in_fresh_process(code)


def shell(pipeline: str) -> dict:
    """A shell pipeline timed in a fresh process; peak RSS of its largest process."""
    code = f"""
import subprocess
t = time.perf_counter()
subprocess.run(["bash", "-o", "pipefail", "-c", {pipeline!r}], check=True)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt,
    "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    return in_fresh_process(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=6_000_000)
    ap.add_argument("--folder-mib", type=int, default=1024)
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "include"))
    from retirement.crypto.keys import KeyStore

    work = Path(tempfile.mkdtemp(prefix="backup-bench-"))
    try:
        master = KeyStore.new_master_key(work / "master.key")
        store = KeyStore(work / "keys", master)
        recipient = store.archive_key("bench", "erase").recipient
        load_s, table_bytes = load_table(args.rows)
        print(f"table: {args.rows:,} rows, {table_bytes / 2**20:,.0f} MiB, {load_s:.0f} s")
        ours_t = ours_table(work / "keys", master, work / "vault")
        print("ours, table:", ours_t)
        out = work / "dump.sql.zst.age"
        dump = shell(
            f"pg_dump -h 127.0.0.1 -U postgres -t customers {DB} | zstd -1 -q -c "
            f"| age -r {recipient} > {out} && sync {out}"
        )
        dump["cipher"] = (work / "dump.sql.zst.age").stat().st_size
        print("pg_dump | zstd | age:", dump)

        folder_bytes = make_folder(work / "files", args.folder_mib)
        subprocess.run(["sync"], check=True)
        ours_f = ours_folder(work / "keys", master, work / "vault", work / "files")
        print("ours, folder:", ours_f)
        tar = shell(
            f"tar c -C {work} files | zstd -1 -q -c | age -r {recipient} "
            f"> {work / 'files.tar.zst.age'} && sync {work / 'files.tar.zst.age'}"
        )
        tar["cipher"] = (work / "files.tar.zst.age").stat().st_size
        print("tar | zstd | age:", tar)
    finally:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB}"')
        shutil.rmtree(work, ignore_errors=True)

    mib = 2**20
    t_mib = table_bytes / mib
    f_mib = folder_bytes / mib
    lines = [
        "## Backup",
        "",
        f"Command: `.venv/bin/python bench/backup_bench.py --rows {args.rows} --folder-mib "
        f"{args.folder_mib}` ({date.today()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL on the same machine).",
        "",
        f"Table `customers`: {args.rows:,} rows x 9 columns, {t_mib:,.0f} MiB on disk "
        f"(table and index). Folder: {ours_f['files']} files, {f_mib:,.0f} MiB "
        "(40% text logs, 20% JSON lines, 40% random binaries). Throughput is the data's "
        "size at the source divided by the wall time. Both sides end with their output on "
        "disk: ours fsyncs every backup file before naming it, the shell pipelines end with "
        "`sync FILE`.",
        "",
        "| run | seconds | MiB/s | output MiB | peak RSS MB | ours / shell |",
        "|---|---:|---:|---:|---:|---:|",
        f"| ours: table (COPY, CSV, row digest, zstd -1, age) | {ours_t['seconds']:.1f} | "
        f"{t_mib / ours_t['seconds']:.0f} | {ours_t['cipher'] / mib:,.0f} | "
        f"{ours_t['rss_mb']:.0f} | {dump['seconds'] / ours_t['seconds']:.0%} |",
        f"| `pg_dump -t customers \\| zstd -1 \\| age -r KEY` | {dump['seconds']:.1f} | "
        f"{t_mib / dump['seconds']:.0f} | {dump['cipher'] / mib:,.0f} | {dump['rss_mb']:.0f} | |",
        f"| ours: folder, file by file | {ours_f['seconds']:.1f} | "
        f"{f_mib / ours_f['seconds']:.0f} | {ours_f['cipher'] / mib:,.0f} | "
        f"{ours_f['rss_mb']:.0f} | {tar['seconds'] / ours_f['seconds']:.0%} |",
        f"| `tar c DIR \\| zstd -1 \\| age -r KEY` | {tar['seconds']:.1f} | "
        f"{f_mib / tar['seconds']:.0f} | {tar['cipher'] / mib:,.0f} | {tar['rss_mb']:.0f} | |",
        "",
        "Where the time goes (profiled on 1M rows, 131 MB of CSV): receiving COPY rows in "
        "Python 0.56 s, the row digest (one SHA-256 per row, needed for the order-independent "
        "fingerprint that deletion later compares) 0.57 s, zstd -1 0.25 s, age 0.05 s; the "
        "first two hold the GIL, so the table backup runs on about one core while the shell "
        "pipeline spreads pg_dump, zstd and age over both. The folder backup has no per-row "
        "work; its gap is pyrage's age (700-1000 MB/s here against 1.5 GB/s for the age "
        "binary) in the same process as zstd. The goal of 90% of the shell pipeline is not "
        "met; moving the row digest into a second process is the next step.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", "## Backup", section)


def write_section(path: Path, heading: str, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section.rstrip("\n") + ("\n" + text[end:] if end != -1 else "\n")
    path.write_text(text)


if __name__ == "__main__":
    main()
