"""The pipeline's phases as the hunt calls them: the one place that knows the library's API.

Each function runs one DAG step in process, the way the DAG's task body does (the glue only
adds Airflow connections and retries), and returns what later steps need.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import KeyStore
from retirement.destinations.local import LocalDestination
from retirement.ledger.core import Ledger
from retirement.phases import inventory as pipeline
from retirement.phases.backup import backup_dataset, gate_backup
from retirement.phases.delete import (
    delete_dataset,
    deletion_request,
    gate_deletion,
    record_decision,
)
from retirement.phases.transfer import gate_transfer, required_deliveries, transfer_dataset
from retirement.sources.build import build_source

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from retirement.sources.base import Source

NOW = "2026-11-23T08:00:00+00:00"
RUN = "hunt"
ACTOR = "hunt"


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

    @property
    def plan(self) -> str:
        return str(self.plan_path)

    def destinations(self) -> dict[str, LocalDestination]:
        return {n: LocalDestination(n, self.out / "dest" / n) for n in ("archive", "successor")}

    @contextmanager
    def source(self) -> Iterator[Source]:
        src = self.open_source()
        try:
            yield src
        finally:
            src.close()


def source_opener(plan_path: Path, *, url: str | None = None, root: str | None = None):  # noqa: ANN201
    """Open the plan's only source ("src") from a database URL or a folder."""

    def open_() -> Source:
        from retirement.plan.model import load_plan

        return build_source(load_plan(plan_path).source("src"), url=url, root=root)

    return open_


def new_pipeline(plan_path: Path, out: Path, open_source: Callable[[], Source]) -> Pipeline:
    ledger = Ledger.open(f"sqlite:///{out / 'ledger.sqlite'}")
    keys = KeyStore(out / "keys", KeyStore.new_master_key(out / "keys" / "master.key"))
    return Pipeline(plan_path, ledger, keys, out, open_source, [], [])


def plan_check(p: Pipeline) -> None:
    pipeline.check_plan(p.plan, ledger=p.ledger, run_id=RUN, actor=ACTOR)


def inventory(p: Pipeline) -> None:
    with p.source() as source:
        pipeline.inventory_source(
            p.plan, "src", source=source, ledger=p.ledger, run_id=RUN, actor=ACTOR
        )


def gate_inventory(p: Pipeline) -> None:
    done = pipeline.gate_inventory(
        p.plan, ledger=p.ledger, run_id=RUN, actor=ACTOR, output_dir=p.out, now=NOW
    )
    p.datasets = list(done["datasets"])


def backup(p: Pipeline) -> None:
    with p.source() as source, p.ledger.batch():
        for dataset in p.datasets:
            backup_dataset(
                p.plan,
                dataset,
                source=source,
                keys=p.keys,
                ledger=p.ledger,
                run_id=RUN,
                actor=ACTOR,
                vault=p.out / "vault",
                now=NOW,
            )


def gate_backup_(p: Pipeline) -> None:
    gate_backup(p.plan, keys=p.keys, ledger=p.ledger, run_id=RUN, actor=ACTOR, output_dir=p.out)


def transfer(p: Pipeline) -> None:
    dests = p.destinations()
    for need in required_deliveries(p.plan, p.ledger, RUN):
        transfer_dataset(
            p.plan,
            need["dataset"],
            need["destination"],
            dest=dests[need["destination"]],
            ledger=p.ledger,
            run_id=RUN,
            actor=ACTOR,
            retired_on=date(2026, 11, 23),
        )


def gate_transfer_(p: Pipeline) -> None:
    gate_transfer(
        p.plan,
        destination_for=p.destinations().__getitem__,
        ledger=p.ledger,
        run_id=RUN,
        actor=ACTOR,
        retired_on=date(2026, 11, 23),
        output_dir=p.out,
    )


def request(p: Pipeline) -> None:
    p.to_delete = list(
        deletion_request(p.plan, ledger=p.ledger, run_id=RUN, actor=ACTOR)["datasets"]
    )


def approve(p: Pipeline) -> None:
    record_decision(p.ledger, RUN, approved=True, by="alice (DPO)", at=NOW)


def delete_context(p: Pipeline) -> dict[str, Any]:
    """What one delete task makes once for all its datasets."""
    from retirement.deletion.proof import ProofBook

    dests = p.destinations()
    return {"book": ProofBook(p.ledger, RUN), "destination_for": dests.__getitem__}


def delete_one(
    p: Pipeline,
    source: Source,
    dataset: str,
    on_rows: Callable[[int], None],
    context: dict[str, Any],
) -> None:
    delete_dataset(
        p.plan,
        dataset,
        source=source,
        keys=p.keys,
        ledger=p.ledger,
        run_id=RUN,
        actor=ACTOR,
        now=NOW,
        on_rows=on_rows,
        **context,
    )


def gate_deletion_(p: Pipeline) -> list[str]:
    done = gate_deletion(
        p.plan,
        open_source=lambda _name: p.open_source(),
        keys=p.keys,
        ledger=p.ledger,
        run_id=RUN,
        actor=ACTOR,
        output_dir=p.out,
        now=NOW,
    )
    return list(done["certificates"])


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
    from retirement.deletion import tables as deletion

    before, defaults = deletion.BATCH, deletion._batches.__defaults__
    deletion.BATCH, deletion._batches.__defaults__ = size, (size,)

    def undo() -> None:
        deletion.BATCH, deletion._batches.__defaults__ = before, defaults

    return undo
