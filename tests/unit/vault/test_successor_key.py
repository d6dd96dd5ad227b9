"""The demo's successor holds its own private key: the real `age` decrypts what the demo
delivers to it with ``age -d -i <out>/recipient/successor.key``, as docs/backup.md says."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.demo_recipient import successor_plan
from retirement.ledger.core import Ledger
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from tests.support.demo import PLAN, DemoRun


def test_the_successor_decrypts_a_delivered_file_with_age(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    plan = successor_plan(Path(PLAN), out)
    key = out / "recipient" / "successor.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.read_text().splitlines()[1].removeprefix("# public key: ")
    assert f"age_public_key: {public}" in plan.read_text()
    assert public not in Path(PLAN).read_text()

    generate(tmp_path / "src", customers=20)
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    demo = DemoRun(
        tmp_path,
        Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        keys,
        tmp_path / "src" / "crm.sqlite",
        plan=str(plan),
    )
    ctx = demo.ctx()
    check_plan(ctx)
    inventory_source(ctx, "crm")
    gate_inventory(ctx)
    demo.delivered()
    (delivered,) = (demo.dest / "successor_drop").rglob("*crm.customers*/*.csv.zst.age")

    plain = subprocess.run(
        f"age -d -i {key} {delivered} | zstd -d",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout.decode()
    header, *rows = plain.splitlines()
    assert header.startswith('"id","name","id_card","mobile","email"')
    assert len(rows) == 20
    wrong = out / "recipient" / "other.key"
    subprocess.run(["age-keygen", "-o", str(wrong)], capture_output=True, check=True)
    refused = subprocess.run(["age", "-d", "-i", str(wrong), str(delivered)], capture_output=True)
    assert refused.returncode != 0
    demo.ledger.close()
