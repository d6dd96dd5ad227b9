"""The transfer phase: deliver every verified backup to its disposition's destinations,
then a gate that re-verifies every required delivery at its destination.

Called by the DAG's ``deliveries``, ``transfer`` (mapped per dataset x destination) and
``gate_transfer`` tasks. Each delivery sends the age file, its manifest and the manifest's
signature, so a recipient can check what they got with sha256sum, openssl and age alone.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.destinations.base import Delivery
from retirement.errors import GateFailed, IntegrityError, TransferError
from retirement.model.manifest import Manifest
from retirement.phases.pinned import run_plan
from retirement.plan.retention import retain_until
from retirement.vault.write import safe_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date

    from retirement.destinations.base import Destination
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)

LATER_STATES = ("delivered", "deleting", "deleted")  # a re-run must never step back


def required_deliveries(plan_path: str, ledger: Ledger, run_id: str) -> list[dict[str, str]]:
    """(dataset, destination) for every backed-up dataset whose disposition has destinations."""
    plan = run_plan(ledger, run_id, plan_path)
    out = []
    for state in ledger.dataset_states(run_id):
        for dest in plan.dispositions[state["disposition"]].destinations:
            out.append({"dataset": state["dataset"], "destination": dest})
    return out


def _items(plan: Plan, state: dict[str, Any], retired_on: date) -> list[tuple[str, Delivery]]:
    """The three files of a dataset's backup, named as in the vault."""
    backup = state["detail"].get("backup")
    if not backup or state["state"] not in ("backup_verified", *LATER_STATES):
        raise TransferError(
            f"{state['dataset']}: no restore-verified backup in this run (state "
            f"{state['state']}): run backup and gate_backup first"
        )
    manifest_path = Path(backup["manifest"])
    manifest = Manifest.from_bytes(manifest_path.read_bytes(), where=str(manifest_path))
    disposition = plan.dispositions[state["disposition"]]
    until = (
        retain_until(disposition.retention, retired_on) if disposition.action == "retain" else None
    )
    folder = f"{plan.name}/{safe_name(state['dataset'])}"
    cipher = manifest_path.parent / manifest.ciphertext_file
    meta = {"dataset": state["dataset"], "plan": plan.name}
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
    for role, path in (
        ("manifest", manifest_path),
        ("signature", manifest_path.with_name(manifest_path.name + ".sig")),
    ):
        data = path.read_bytes()
        items.append(
            (
                role,
                Delivery(
                    path,
                    f"{folder}/{path.name}",
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    meta,
                    until,
                ),
            )
        )
    return items


def transfer_dataset(
    plan_path: str,
    dataset: str,
    destination: str,
    *,
    dest: Destination,
    ledger: Ledger,
    run_id: str,
    actor: str,
    retired_on: date,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Deliver one dataset's backup to one destination; every file gets a receipt."""
    plan = run_plan(ledger, run_id, plan_path)
    state = _state(ledger, run_id, dataset)
    receipts = []
    for role, item in _items(plan, state, retired_on):
        receipt = dest.deliver(item, on_bytes=on_bytes)
        ledger.add_artifact(
            run_id,
            kind="receipt",
            location=receipt.location,
            size=receipt.size,
            sha256=receipt.sha256,
            actor=actor,
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


def gate_transfer(
    plan_path: str,
    *,
    destination_for: Callable[[str], Destination],
    ledger: Ledger,
    run_id: str,
    actor: str,
    retired_on: date,
    output_dir: Path | None = None,
) -> dict[str, Any]:
    """Every required delivery has a receipt whose digest equals the manifest, and the object
    at the destination still verifies (current version, size, digest). All or nothing."""
    from retirement.gates import quality
    from retirement.phases.inventory import record_gate, safe_dir

    plan = run_plan(ledger, run_id, plan_path)
    receipts = ledger.artifacts(run_id, kind="receipt")
    states = {s["dataset"]: s for s in ledger.dataset_states(run_id)}
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    delivered: dict[str, list[dict[str, Any]]] = {}
    opened: dict[str, Destination] = {}
    try:
        for need in required_deliveries(plan_path, ledger, run_id):
            dataset, name = need["dataset"], need["destination"]
            try:
                items = _items(plan, states[dataset], retired_on)
            except TransferError as exc:
                failures.append(str(exc))
                continue
            for role, item in items:
                found = [
                    r
                    for r in receipts
                    if r["dataset"] == dataset
                    and _detail(r).get("destination") == name
                    and _detail(r).get("name") == item.name
                ]
                receipt = _detail(found[-1]) if found else None
                row = {
                    "delivery": f"{dataset} -> {name} ({role})",
                    "manifest_sha256": item.sha256,
                    "receipt_sha256": receipt["sha256"] if receipt else None,
                    "verified_now": None,
                }
                if receipt is None:
                    failures.append(f"{row['delivery']}: no receipt (run the transfer task)")
                else:
                    try:
                        dest = opened.get(name) or opened.setdefault(name, destination_for(name))
                        again = dest.verify(item, receipt)
                        row["verified_now"] = again.sha256
                    except (IntegrityError, TransferError) as exc:
                        failures.append(f"{row['delivery']}: {exc}")
                    if role == "backup":
                        delivered.setdefault(dataset, []).append(receipt)
                rows.append(row)
    finally:
        for dest in opened.values():
            dest.close()
    result = quality.run_gate("gate_transfer", quality.transfer_frames(rows))
    failures += [f for f in result.failures if f not in failures]
    summary = {"gate": "gate_transfer", "deliveries": len(rows), "failures": failures}
    if output_dir is not None:
        folder = output_dir / "evidence" / safe_dir(run_id)
        record_gate(ledger, run_id, actor, folder, result, summary=summary)
    if failures:
        raise GateFailed("gate_transfer", "; ".join(failures), summary)
    for dataset, dataset_receipts in delivered.items():
        state = states[dataset]
        if state["state"] != "backup_verified":
            continue  # delivered before, or already deleted: a re-run changes nothing
        ledger.set_dataset_state(
            run_id,
            dataset,
            "delivered",
            actor=actor,
            payload={**state["detail"], "deliveries": dataset_receipts},
        )
    return summary


def _detail(artifact: dict[str, Any]) -> dict[str, Any]:
    import json

    detail = artifact["detail"]
    return json.loads(detail) if isinstance(detail, str) else detail


def _state(ledger: Ledger, run_id: str, dataset: str) -> dict[str, Any]:
    from retirement.phases.inventory import dataset_state

    state = dataset_state(ledger, run_id, dataset)
    if state is None:
        raise TransferError(f"{dataset} was not inventoried in run {run_id}")
    return state
