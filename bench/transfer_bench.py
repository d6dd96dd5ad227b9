"""Transfer benchmark: our SFTP and S3 deliveries against OpenSSH ``sftp`` and plain boto3.

    .venv/bin/python bench/transfer_bench.py [--mib 1024] [--rounds 2]

Starts the same servers the tests use (an OpenSSH sshd on a loopback port, a single-node
Ceph RadosGW over HTTPS) and uploads one random file of ``--mib`` MiB (a backup is
incompressible) with:

* ``SftpDestination.deliver`` (upload, rename, read-back verification) vs
  ``sftp -b - ... put`` (OpenSSH's client, its defaults);
* ``S3Destination.deliver`` (multipart with Content-MD5 per part, HeadObject verification)
  vs ``boto3 upload_file`` with default settings (TransferConfig defaults).

Each upload runs in a fresh process for its peak RSS; the best of ``--rounds`` is kept.
RadosGW frees deleted objects only at its next garbage collection, so with the test
server's 3 GiB memstore use ``--rounds 1`` for 1 GiB files.
Results go to stdout and to bench/RESULTS.md ("## Transfer").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))

from bench.backup_bench import write_section  # noqa: E402


def fresh(code: str) -> dict:
    wrapper = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'include')!r}); sys.path.insert(0, {str(ROOT)!r})\n"
        + code
        + "\nout['rss_mb'] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024\nprint(json.dumps(out))"
    )
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def sftp_connection(sshd: Any) -> dict[str, Any]:
    return {
        "host": sshd.host,
        "port": sshd.port,
        "login": sshd.user,
        "extra": sshd.connection_extra(),
    }


def s3_connection(gw: Any) -> dict[str, Any]:
    return {"login": gw.access_key, "password": gw.secret_key, "extra": gw.connection_extra()}


def _item(payload: Path, name: str) -> str:
    h = hashlib.sha256()
    with payload.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    size = payload.stat().st_size
    return f"Delivery(Path({str(payload)!r}), {name!r}, {size}, {h.hexdigest()!r})"


def ours_sftp(conn: dict[str, Any], payload: Path, name: str, path: str) -> dict:
    """SftpDestination.deliver (upload, rename, arrival check), timed in a fresh process."""
    return fresh(f"""
from pathlib import Path
from retirement.connect.info import ConnectionInfo
from retirement.destinations.base import Delivery
from retirement.destinations.sftp import SftpDestination
c = {conn!r}
info = ConnectionInfo("b", "sftp", c["host"], c["login"], None, c["port"], None, c["extra"])
item = {_item(payload, name)}
t = time.perf_counter()
with SftpDestination.from_connection("b", info, path={path!r}) as dest:
    receipt = dest.deliver(item)
    total = time.perf_counter() - t
    t = time.perf_counter()
    dest.verify(item)
    verify = time.perf_counter() - t
out = {{"seconds": total, "upload": total - verify, "method": receipt.method}}
""")


def _ssh_options(sshd: Any) -> list[str]:
    return ["-i", str(sshd.client_key_path), "-o", f"UserKnownHostsFile={sshd.known_hosts_path}"]


def openssh_put(sshd: Any, payload: Path, target: str, *, check: bool = False) -> dict:
    """OpenSSH ``sftp`` put with its defaults; with ``check``, then ``ssh HOST sha256sum``."""
    put = ["sftp", "-b", "-", *_ssh_options(sshd), "-P", str(sshd.port), f"{sshd.user}@{sshd.host}"]
    ssh = [
        "ssh",
        *_ssh_options(sshd),
        "-p",
        str(sshd.port),
        f"{sshd.user}@{sshd.host}",
        f"sha256sum {target}",
    ]
    return fresh(f"""
import subprocess
t = time.perf_counter()
subprocess.run({put!r}, input="put {payload} {target}\\n", text=True, check=True,
               capture_output=True)
if {check!r}:
    subprocess.run({ssh!r}, check=True, capture_output=True)
out = {{"seconds": time.perf_counter() - t}}
""")


def warm_bucket(gw: Any, bucket: str) -> None:
    """Create ``bucket``; RadosGW's first writes and first multipart upload are slow (its
    pools are made on first use, ~1-2 s): warm them up for both sides."""
    warm = gw.client()
    warm.create_bucket(Bucket=bucket)
    for n in range(8):
        warm.put_object(Bucket=bucket, Key=f"warm{n}", Body=os.urandom(1 << 20))
    upload = warm.create_multipart_upload(Bucket=bucket, Key="warm")["UploadId"]
    warm.abort_multipart_upload(Bucket=bucket, Key="warm", UploadId=upload)


def ours_s3(s3conn: dict[str, Any], bucket: str, payload: Path, name: str) -> dict:
    """S3Destination.deliver (multipart, Content-MD5, HeadObject check) in a fresh process."""
    return fresh(f"""
from pathlib import Path
from retirement.connect.info import ConnectionInfo
from retirement.destinations.base import Delivery
from retirement.destinations.s3 import S3Destination
c = {s3conn!r}
info = ConnectionInfo("b", "aws", None, c["login"], c["password"], None, None, c["extra"])
item = {_item(payload, name)}
dest = S3Destination.from_connection("b", info, bucket={bucket!r})
t = time.perf_counter()
receipt = dest.deliver(item)
out = {{"seconds": time.perf_counter() - t, "method": receipt.method}}
""")


def boto3_upload(s3conn: dict[str, Any], bucket: str, payload: Path, name: str) -> dict:
    """boto3 ``upload_file`` with the default TransferConfig, in a fresh process."""
    return fresh(f"""
import boto3
from botocore.config import Config
c = {s3conn!r}
client = boto3.client("s3", endpoint_url=c["extra"]["endpoint_url"], region_name="us-east-1",
    aws_access_key_id=c["login"], aws_secret_access_key=c["password"],
    verify=c["extra"]["verify"], config=Config(**c["extra"]["config_kwargs"]))
t = time.perf_counter()
client.upload_file({str(payload)!r}, {bucket!r}, {name!r})
out = {{"seconds": time.perf_counter() - t}}
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from tests.servers.radosgw import start_radosgw
    from tests.servers.sshd import SshServer

    work = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    payload = work / "backup.csv.zst.age"
    with payload.open("wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1 << 20))
    sshd = SshServer(work / "sshd")
    sshd.start()
    gw = start_radosgw(work / "rgw")
    results: dict[str, list[dict]] = {k: [] for k in ("ours_sftp", "openssh", "ours_s3", "boto3")}
    try:
        conn, s3conn = sftp_connection(sshd), s3_connection(gw)
        for i in range(args.rounds):
            for leftover in sshd.upload_dir.iterdir():
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            results["ours_sftp"].append(ours_sftp(conn, payload, f"r{i}/backup.age", "ours"))
            (sshd.upload_dir / "ossh").mkdir(exist_ok=True)
            results["openssh"].append(openssh_put(sshd, payload, f"ossh/r{i}.age"))
            bucket = f"bench-{i}"
            warm_bucket(gw, bucket)
            results["ours_s3"].append(ours_s3(s3conn, bucket, payload, "ours.age"))
            results["boto3"].append(boto3_upload(s3conn, bucket, payload, "plain.age"))
            client = gw.client()
            for key in ("ours.age", "plain.age"):
                client.delete_object(Bucket=bucket, Key=key)
            print(f"round {i + 1}:", {k: round(v[-1]["seconds"], 2) for k, v in results.items()})
    finally:
        sshd.stop()
        gw.close()
        shutil.rmtree(work, ignore_errors=True)

    r = {k: best(v) for k, v in results.items()}
    mib = args.mib

    def row(label: str, res: dict, ref: dict | None) -> str:
        ratio = f"{ref['seconds'] / res['seconds']:.0%}" if ref else ""
        return (
            f"| {label} | {res['seconds']:.1f} | {mib / res['seconds']:.0f} | "
            f"{res['rss_mb']:.0f} | {ratio} |"
        )

    lines = [
        "## Transfer",
        "",
        f"Command: `.venv/bin/python bench/transfer_bench.py --mib {mib} --rounds "
        f"{args.rounds}` ({date.today()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}). One random {mib} MiB file (a backup is "
        "incompressible) to an OpenSSH sshd and a single-node Ceph RadosGW (memstore, HTTPS) "
        f"on this machine; best of {args.rounds} rounds, each upload in a fresh process. Our "
        "times include verification at the destination "
        f"(SFTP: {r['ours_sftp']['method']}; S3: HeadObject).",
        "",
        "| upload | seconds | MiB/s | peak RSS MB | ours / reference |",
        "|---|---:|---:|---:|---:|",
        row("ours: SftpDestination.deliver", r["ours_sftp"], r["openssh"]),
        row(
            "ours: the upload alone (total minus one verification)",
            {**r["ours_sftp"], "seconds": r["ours_sftp"]["upload"]},
            r["openssh"],
        ),
        row("OpenSSH `sftp` put (defaults)", r["openssh"], None),
        row(
            "ours: S3Destination.deliver (16 MiB parts x 4, Content-MD5)", r["ours_s3"], r["boto3"]
        ),
        row("boto3 `upload_file` (default TransferConfig)", r["boto3"], None),
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", "## Transfer", section)


if __name__ == "__main__":
    main()
