"""Peak Python allocation (tracemalloc) of sealing a dossier over N datasets.

The ledger holds N deleted files, each with the column profile the inventory records; no
evidence files exist, so what is measured is what the dossier holds per dataset, plus the
PDF (a constant: its lists stop at PDF_ROWS).

    .venv/bin/python bench/dossier_memory.py 20000
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from retirement.crypto.keys import KeyStore
from retirement.evidence.dossier import build_dossier
from retirement.ledger.core import Ledger
from retirement.plan.model import load_plan

PLAN = Path(__file__).resolve().parents[1] / "include/plans/demo.yaml"


def _column(name: str) -> dict[str, object]:
    return {
        "class": "general",
        "detected": "cn_mobile",
        "found": {"cn_mobile": 5},
        "hit_ratio": 1.0,
        "name": name,
        "sample_hit_ratio": 1.0,
        "type": "text",
    }


def _detail(i: int) -> dict[str, object]:
    backup = {
        "ciphertext_sha256": f"{i:064x}",
        "manifest": f"/srv/vault/files.export_{i:06d}.csv.manifest.json",
        "created_at": "2026-11-23T00:00:00+00:00",
        "reason": "first backup",
        "row_digest": "a" * 64,
        "rows": 5,
    }
    return {
        "backup": backup,
        "bytes": 221,
        "class": "general",
        "kind": "file",
        "columns": [_column(f"c{j}") for j in range(4)],
        "deletion": {"started_at": "2026-11-23", "result": {"technique": "unlink", "deleted": 1}},
    }


def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dossier-memory-"))
    ledger = Ledger.open(f"sqlite:///{tmp}/ledger.sqlite")
    keys = KeyStore(tmp / "keys", KeyStore.new_master_key(tmp / "keys/master.key"))
    ledger.start_run("r", plan_name="demo", plan_sha256="0" * 64, scenario="x", actor="bench")
    with ledger.batch():
        for i in range(n):
            ledger.set_dataset_state(
                "r",
                f"files.export_{i:06d}.csv",
                "deleted",
                actor="bench",
                payload=_detail(i),
                rows=5,
                data_class="general",
                disposition="erase",
            )
    tracemalloc.start()
    started = time.perf_counter()
    build_dossier(
        load_plan(PLAN),
        plan_path=PLAN,
        ledger=ledger,
        run_id="r",
        keys=keys,
        output_dir=tmp / "out",
        generated="2026-11-23T00:00:00+00:00",
    )
    peak = tracemalloc.get_traced_memory()[1]
    took = time.perf_counter() - started
    print(f"{n} datasets: build_dossier peak {peak / 2**20:.0f} MiB traced, {took:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
