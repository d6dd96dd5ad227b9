"""gate_transfer: every required delivery has a receipt whose digest equals the manifest,
and the object at the destination verifies again now (current version, size, digest)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from retirement.errors import GateFailed, IntegrityError, TransferError
from retirement.gates.record import record_gate
from retirement.model.records import DeliveriesRecord, added
from retirement.model.state import DatasetState
from retirement.phases.anchor import anchor_gate
from retirement.phases.preview import refuse_preview
from retirement.phases.transfer import delivery_files, required_deliveries

if TYPE_CHECKING:
    from retirement.destinations.base import Delivery, Destination
    from retirement.phases.context import RunContext


def gate_transfer(ctx: RunContext) -> dict[str, Any]:
    """Check every required delivery again at its destination; all or nothing."""
    refuse_preview(ctx, "gate_transfer")
    from retirement.gates import quality

    ledger, run_id = ctx.ledger, ctx.run_id
    receipts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in ledger.artifacts(run_id, kind="receipt"):  # the latest per file, found once
        detail = _detail(r)
        receipts[(r["dataset"], str(detail.get("destination")), str(detail.get("name")))] = detail
    states = {s.dataset: s for s in ledger.dataset_states(run_id)}
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    delivered: dict[str, list[dict[str, Any]]] = {}
    opened: dict[str, Destination] = {}
    try:
        for need in required_deliveries(ctx):
            dataset, name = need["dataset"], need["destination"]
            try:
                files = delivery_files(ctx.plan, states[dataset], ctx.today)
            except TransferError as exc:
                failures.append(str(exc))
                continue
            for role, item in files:
                receipt = receipts.get((dataset, name, item.name))
                rows.append(_check(ctx, opened, name, dataset, role, item, receipt, failures))
                if receipt is not None and role == "backup":
                    delivered.setdefault(dataset, []).append(receipt)
    finally:
        for dest in opened.values():
            dest.close()
    result = quality.run_gate("gate_transfer", quality.transfer_frames(rows))
    failures += [f for f in result.failures if f not in failures]
    summary = {"gate": "gate_transfer", "deliveries": len(rows), "failures": failures}
    record_gate(ledger, run_id, ctx.actor, ctx.layout.evidence(run_id), result, summary=summary)
    if failures:
        raise GateFailed("gate_transfer", "; ".join(failures), summary)
    with ledger.batch():
        for dataset, dataset_receipts in delivered.items():
            if states[dataset].state is not DatasetState.BACKUP_VERIFIED:
                continue  # delivered before, or already deleted: a re-run changes nothing
            record = DeliveriesRecord(tuple(dataset_receipts))
            ledger.set_dataset_state(
                run_id, dataset, DatasetState.DELIVERED, actor=ctx.actor, payload=added(record)
            )
    anchor_gate(ctx, "gate_transfer")  # before the deletion is requested
    return summary


def _check(
    ctx: RunContext,
    opened: dict[str, Destination],
    name: str,
    dataset: str,
    role: str,
    item: Delivery,
    receipt: dict[str, Any] | None,
    failures: list[str],
) -> dict[str, Any]:
    """One delivery's row of the gate: its receipt and what the destination says now."""
    row = {
        "delivery": f"{dataset} -> {name} ({role})",
        "manifest_sha256": item.sha256,
        "receipt_sha256": receipt["sha256"] if receipt else None,
        "verified_now": None,
    }
    if receipt is None:
        failures.append(f"{row['delivery']}: no receipt (run the transfer task)")
        return row
    try:
        dest = opened.get(name) or opened.setdefault(name, ctx.destination(name))
        row["verified_now"] = dest.verify(item, receipt).sha256
    except (IntegrityError, TransferError) as exc:
        failures.append(f"{row['delivery']}: {exc}")
    return row


def _detail(artifact: dict[str, Any]) -> dict[str, Any]:
    detail = artifact["detail"]
    parsed: dict[str, Any] = json.loads(detail) if isinstance(detail, str) else detail
    return parsed
