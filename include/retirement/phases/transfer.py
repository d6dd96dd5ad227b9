"""deliveries and transfer: every verified backup delivered to its disposition's
destinations (mapped batches of "dataset -> destination"), each file with a receipt.

Each delivery sends the age file, its manifest and the manifest's signature, so a recipient
can check what they got with sha256sum, openssl and age alone.
"""

from __future__ import annotations

import hashlib
import logging
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.destinations.base import Delivery
from retirement.errors import IntegrityError, TransferError
from retirement.model.manifest import Manifest
from retirement.phases.preview import refuse_preview
from retirement.plan.retention import retain_until
from retirement.vault.write import safe_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date

    from retirement.destinations.base import Destination
    from retirement.model.records import DatasetRecord
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)

ARROW = " -> "  # "dataset -> destination", one item of a transfer batch


def required_deliveries(ctx: RunContext) -> list[dict[str, str]]:
    """(dataset, destination) for every dataset whose disposition has destinations."""
    plan = ctx.plan
    return [
        {"dataset": state.dataset, "destination": dest}
        for state in ctx.ledger.dataset_states(ctx.run_id)
        for dest in plan.dispositions[str(state.disposition)].destinations
    ]


def delivery_items(ctx: RunContext) -> list[str]:
    """Every required delivery as one "dataset -> destination" item, ordered by destination
    so a batch opens few destinations."""
    needed = sorted(required_deliveries(ctx), key=lambda d: d["destination"])
    return [f"{d['dataset']}{ARROW}{d['destination']}" for d in needed]


def transfer_batch(ctx: RunContext, batch: list[str]) -> list[dict[str, Any]]:
    """Deliver every "dataset -> destination" of a batch, each destination opened once."""
    refuse_preview(ctx, "transfer")
    pairs = [item.rsplit(ARROW, 1) for item in batch]
    done = []
    for destination, group in groupby(pairs, key=lambda pair: pair[1]):
        with ctx.destination(destination) as dest:
            for dataset, _ in group:
                done.append(transfer_dataset(ctx, dataset, destination, dest))
    return done


def delivery_files(
    plan: Plan, state: DatasetRecord, retired_on: date
) -> list[tuple[str, Delivery]]:
    """The three files of a dataset's backup (role, what to deliver), named as in the vault."""
    backup = state.backup
    if backup is None or not state.state.backup_verified:
        raise TransferError(
            f"{state.dataset}: no restore-verified backup in this run (state "
            f"{state.state}): run backup and gate_backup first"
        )
    manifest_path = Path(backup.manifest)
    manifest = Manifest.from_bytes(
        _vault_bytes(manifest_path, state.dataset), where=str(manifest_path)
    )
    disposition = plan.dispositions[str(state.disposition)]
    until = (
        retain_until(disposition.retention, retired_on) if disposition.action == "retain" else None
    )
    folder = f"{plan.name}/{safe_name(state.dataset)}"
    cipher = manifest_path.parent / manifest.ciphertext_file
    meta = {"dataset": state.dataset, "plan": plan.name}
    items = [
        (
            "backup",
            Delivery(
                cipher,
                f"{folder}/{cipher.name}",
                manifest.ciphertext_size,
                manifest.ciphertext_sha256,
                {**meta, "plaintext-sha256": manifest.plaintext_sha256},
                until,
            ),
        )
    ]
    if not cipher.is_file():
        raise _gone(cipher, state.dataset)
    for role, path in (
        ("manifest", manifest_path),
        ("signature", manifest_path.with_name(manifest_path.name + ".sig")),
    ):
        data = _vault_bytes(path, state.dataset)
        sha = hashlib.sha256(data).hexdigest()
        items.append((role, Delivery(path, f"{folder}/{path.name}", len(data), sha, meta, until)))
    return items


def _gone(path: Path, dataset: str) -> IntegrityError:
    return IntegrityError(
        f"{dataset}: {path} is gone from the vault since gate_backup verified it: nothing "
        "was delivered or deleted; run backup and gate_backup again (a new version), then "
        "the transfer"
    )


def _vault_bytes(path: Path, dataset: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise _gone(path, dataset) from exc


def transfer_dataset(
    ctx: RunContext,
    dataset: str,
    destination: str,
    dest: Destination,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Deliver one dataset's backup to one destination; every file gets a receipt."""
    state = ctx.ledger.dataset_state(ctx.run_id, dataset)
    if state is None:
        raise TransferError(f"{dataset} was not inventoried in run {ctx.run_id}")
    receipts = []
    for role, item in delivery_files(ctx.plan, state, ctx.today):
        receipt = dest.deliver(item, on_bytes=on_bytes)
        ctx.ledger.add_artifact(
            ctx.run_id,
            kind="receipt",
            location=receipt.location,
            size=receipt.size,
            sha256=receipt.sha256,
            actor=ctx.actor,
            dataset=dataset,
            detail={**receipt.as_dict(), "role": role},
        )
        receipts.append({"role": role, "location": receipt.location, "method": receipt.method})
        log.info(
            "%s -> %s: %s verified (%s bytes%s)",
            dataset,
            destination,
            receipt.location,
            receipt.size,
            f", resumed at {receipt.resumed_from}" if receipt.resumed_from else "",
        )
    return {"dataset": dataset, "destination": destination, "receipts": receipts}


def delivery_batches(ctx: RunContext) -> list[list[str]]:
    """Every required delivery, in batches for the mapped transfer."""
    refuse_preview(ctx, "deliveries")
    from retirement.phases.batching import batched

    return batched(ctx, delivery_items(ctx))
