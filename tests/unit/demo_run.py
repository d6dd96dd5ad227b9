"""A demo run inventoried (and its inventory gated) into a real ledger, for the backup,
transfer and deletion phase tests."""

from __future__ import annotations

from pathlib import Path

from retirement.crypto.keys import KeyStore
from retirement.demo import generate
from retirement.ledger.core import Ledger
from retirement.phases.backup import backup_dataset
from retirement.phases.inventory import check_plan, gate_inventory, inventory_source
from retirement.sources.sql import SqlSource

PLAN = str(Path(__file__).resolve().parents[2] / "include" / "plans" / "demo.yaml")
NOW = "2026-11-23T08:00:00+00:00"


def demo_run(tmp_path: Path):  # noqa: ANN201
    generate(tmp_path / "src", customers=30)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    check_plan(PLAN, ledger=ledger, run_id="r", actor="t")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    db = tmp_path / "src" / "crm.sqlite"
    with SqlSource("crm", f"sqlite:///{db}") as source:
        inventory_source(PLAN, "crm", source=source, ledger=ledger, run_id="r", actor="t")
    gate_inventory(PLAN, ledger=ledger, run_id="r", actor="t", output_dir=tmp_path / "out", now=NOW)
    yield ledger, keys, db, tmp_path / "vault"
    ledger.close()


def on_demo_source(setup, step, dataset: str, **extra: object) -> dict:  # noqa: ANN001
    """Run a per-dataset step (backup_dataset, delete_dataset) of run "r" on the demo CRM."""
    ledger, keys, db, _ = setup
    with SqlSource("crm", f"sqlite:///{db}") as source:
        return step(
            PLAN,
            dataset,
            source=source,
            keys=keys,
            ledger=ledger,
            run_id="r",
            actor="t",
            now=NOW,
            **extra,
        )


def _backup(setup, dataset: str = "crm.customers") -> dict:  # noqa: ANN001
    return on_demo_source(setup, backup_dataset, dataset, vault=setup[3])
