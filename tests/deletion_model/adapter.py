"""The pipeline's phases as the hunt calls them: the one place that knows the library's API.

Each function runs one DAG step in process, the way the DAG's task does (the glue only adds
Airflow connections and retries), on a RunContext built from the hunt's own source, ledger,
keys and local destinations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import KeyStore
from retirement.destinations.local import LocalDestination
from retirement.ledger.core import Ledger
from retirement.phases import (
    backup as backup_phase,
)
from retirement.phases import (
    delete as delete_phase,
)
from retirement.phases import (
    gate_backup,
    gate_deletion,
    gate_inventory,
    gate_transfer,
    inventory,
    plan_check,
    transfer,
)
from retirement.sources.build import build_source
from tests.support.context import context

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from retirement.phases.context import RunContext
    from retirement.sources.base import Source

NOW = "2026-11-23T08:00:00+00:00"
RUN = "hunt"
DESTINATIONS = ("archive", "successor")


@dataclass
class Pipeline:
    """What the phases need: the plan file, the ledger, keys, folders, a source opener."""

    plan_path: Path
    ledger: Ledger
    keys: KeyStore
    out: Path
    open_source: Callable[[], Source]
    datasets: list[str]
    to_delete: list[str]

    def ctx(self) -> RunContext:
        dests = {n: (lambda n=n: LocalDestination(n, self.out / "dest" / n)) for n in DESTINATIONS}
        return context(
            self.plan_path,
            self.ledger,
            self.keys,
            self.out,
            {"src": self.open_source},
            run_id=RUN,
            actor="hunt",
            now=NOW,
            destinations=dests,
        )

    def source(self) -> Source:
        return self.open_source()


def source_opener(plan_path: Path, *, url: str | None = None, root: str | None = None):
    """Open the plan's only source ("src") from a database URL or a folder."""

    def open_() -> Source:
        from retirement.plan.model import load_plan

        return build_source(load_plan(plan_path).source("src"), url=url, root=root)

    return open_


def new_pipeline(plan_path: Path, out: Path, open_source: Callable[[], Source]) -> Pipeline:
    ledger = Ledger.open(f"sqlite:///{out / 'ledger.sqlite'}")
    keys = KeyStore(out / "keys", KeyStore.new_master_key(out / "keys" / "master.key"))
    return Pipeline(plan_path, ledger, keys, out, open_source, [], [])


def plan_check_(p: Pipeline) -> None:
    plan_check.check_plan(p.ctx())


def inventory_(p: Pipeline) -> None:
    inventory.inventory_source(p.ctx(), "src")


def gate_inventory_(p: Pipeline) -> None:
    p.datasets = list(gate_inventory.gate_inventory(p.ctx())["datasets"])


def backup(p: Pipeline) -> None:
    backup_phase.back_up_batch(p.ctx(), p.datasets)


def gate_backup_(p: Pipeline) -> None:
    gate_backup.gate_backup(p.ctx())


def transfer_(p: Pipeline) -> None:
    transfer.transfer_batch(p.ctx(), transfer.delivery_items(p.ctx()))


def gate_transfer_(p: Pipeline) -> None:
    gate_transfer.gate_transfer(p.ctx())


def request(p: Pipeline) -> None:
    p.to_delete = list(delete_phase.deletion_request(p.ctx())["datasets"])


def approve(p: Pipeline) -> None:
    delete_phase.record_decision(p.ctx(), approved=True, by="alice (DPO)", at=NOW)


PHASES: dict[str, Callable[[Pipeline], None]] = {
    "plan_check": plan_check_,
    "inventory": inventory_,
    "gate_inventory": gate_inventory_,
    "backup": backup,
    "gate_backup": gate_backup_,
    "transfer": transfer_,
    "gate_transfer": gate_transfer_,
    "request": request,
    "approve": approve,
}


def delete_context(p: Pipeline) -> dict[str, Any]:
    """What one delete task makes once for all its datasets."""
    from retirement.deletion.proof import ProofBook

    ctx = p.ctx()
    return {"ctx": ctx, "book": ProofBook(p.ledger, RUN), "destination_for": ctx.destination}


def delete_one(
    p: Pipeline,
    source: Source,
    dataset: str,
    on_rows: Callable[[int], None],
    context: dict[str, Any],
) -> None:
    delete_phase.delete_dataset(
        context["ctx"],
        dataset,
        source,
        book=context["book"],
        destination_for=context["destination_for"],
        on_rows=on_rows,
    )


def gate_deletion_(p: Pipeline) -> list[str]:
    return list(gate_deletion.gate_deletion(p.ctx())["certificates"])


def dataset_name(name: str, sheet: str | None = None) -> str:
    """The pipeline's name of the source's table or file ``name`` (and sheet)."""
    from retirement.model.ids import DatasetId

    return str(DatasetId("src", name, sheet))


def claimed_deleted(certificate: dict[str, Any]) -> int:
    """The number of rows (or files) a certificate says were destroyed."""
    return int(certificate["target"]["rows"])


def certified_backup(certificate: dict[str, Any]) -> str:
    """The ciphertext sha256 of the backup a certificate names."""
    return str(certificate["backup"]["ciphertext_sha256"])


def set_delete_batch(size: int) -> Callable[[], None]:
    """Make deletion batches tiny so a kill can land between two of them; returns undo."""
    from retirement.deletion import keyed as deletion

    before = deletion.BATCH
    deletion.BATCH = size

    def undo() -> None:
        deletion.BATCH = before

    return undo
