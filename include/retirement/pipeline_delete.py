"""The deletion phase: the request an approver sees, the decision, scoped deletion with
proof checked first, and a gate that verifies and issues signed certificates.

Called by the DAG's ``deletion_request``, ``approve_deletion``, ``delete`` (mapped per
dataset) and ``gate_deletion`` tasks. Nothing is deleted without, in the ledger: an
approval of this run, a signed and restore-verified backup, a verified receipt for every
delivery its disposition requires, and a source that still equals the backup.
"""

from __future__ import annotations

import hashlib
import logging
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.errors import DeletionRefused, GateFailed, IntegrityError
from retirement.keys import load_public_key
from retirement.manifest import read_verified
from retirement.model.ids import DatasetId
from retirement.plan import load_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.keys import KeyStore
    from retirement.ledger import Ledger
    from retirement.manifest import Manifest
    from retirement.sources.base import Source

log = logging.getLogger(__name__)

DELETABLE = ("backup_verified", "delivered")
IN_PROGRESS = ("deleting",)


# ---------------------------------------------------------------------- request, decision


def deletion_request(plan_path: str, *, ledger: Ledger, run_id: str, actor: str) -> dict[str, Any]:
    """What will be destroyed and the proof that it is safe elsewhere, for the approver."""
    plan = load_plan(plan_path)
    rows: list[dict[str, Any]] = []
    for state in ledger.dataset_states(run_id):
        if state["state"] not in (*DELETABLE, *IN_PROGRESS, "deleted"):
            continue
        detail = state["detail"]
        backup = detail.get("backup", {})
        rows.append(
            {
                "dataset": state["dataset"],
                "kind": detail.get("kind", "table"),
                "rows": state["rows"],
                "bytes": state["bytes"],
                "class": state["data_class"],
                "disposition": state["disposition"],
                "backup_sha256": backup.get("ciphertext_sha256"),
                "receipts": [r["location"] for r in detail.get("deliveries", [])],
            }
        )
    lines = [
        f"**Permanent deletion at the source** for plan `{plan.name}` "
        f"({plan.organization.name}). Every dataset below has a signed, restore-verified "
        "backup; those that go to a successor or an archive also have verified deliveries.",
        "",
        "| dataset | class | rows | bytes | disposition | backup sha256 | delivered to |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['class']} | {r['rows']:,} | {r['bytes'] or 0:,} | "
            f"{r['disposition']} | `{(r['backup_sha256'] or '')[:16]}…` | "
            f"{', '.join(r['receipts']) or '-'} |"
        )
    totals = {
        "datasets": len(rows),
        "rows": sum(r["rows"] or 0 for r in rows),
        "bytes": sum(r["bytes"] or 0 for r in rows),
    }
    lines += [
        "",
        f"Total: {totals['datasets']} datasets, {totals['rows']:,} rows, "
        f"{totals['bytes']:,} bytes. Approve to delete; reject to end the run with nothing "
        "deleted.",
    ]
    ledger.append(
        "deletion_requested", actor=actor, run_id=run_id, payload={"datasets": rows, **totals}
    )
    return {"body": "\n".join(lines), "datasets": [r["dataset"] for r in rows]}


def record_decision(
    ledger: Ledger, run_id: str, *, approved: bool, by: str, at: str, auto: bool = False
) -> None:
    ledger.append(
        "deletion_approved" if approved else "deletion_rejected",
        actor=by,
        run_id=run_id,
        payload={"approved_by": by, "approved_at": at, "auto": auto, "approved": approved},
    )


def decision(ledger: Ledger, run_id: str) -> dict[str, Any] | None:
    """The latest approval decision of the run, or None."""
    decided = ledger.events_of(run_id, ("deletion_approved", "deletion_rejected"))
    return decided[-1].payload if decided else None


# ---------------------------------------------------------------------- proof, deletion


def _manifest(state: dict[str, Any], keys: KeyStore) -> tuple[Manifest, Path]:
    backup = state["detail"].get("backup")
    if not backup:
        raise DeletionRefused(f"{state['dataset']}: no backup recorded in this run")
    path = Path(backup["manifest"])
    try:
        manifest = read_verified(path, load_public_key(keys.public_signing_key_pem()))
    except IntegrityError as exc:
        raise DeletionRefused(f"{state['dataset']}: the backup's manifest: {exc}") from exc
    if manifest.ciphertext_sha256 != backup["ciphertext_sha256"]:
        raise DeletionRefused(f"{state['dataset']}: the manifest is not the one in the ledger")
    return manifest, path.parent / manifest.ciphertext_file


def check_proof(
    plan_path: str, state: dict[str, Any], *, ledger: Ledger, run_id: str, keys: KeyStore
) -> tuple[Manifest, Path]:
    """Raise DeletionRefused unless the ledger proves the dataset is safe elsewhere."""
    dataset = state["dataset"]
    decided = decision(ledger, run_id)
    if not decided or not decided.get("approved"):
        raise DeletionRefused(
            f"{dataset}: deletion was not approved in run {run_id}"
            + (" (it was rejected)" if decided else "")
        )
    if state["state"] not in (*DELETABLE, *IN_PROGRESS):
        raise DeletionRefused(
            f"{dataset}: state {state['state']}; deletion needs a restore-verified backup "
            "(gate_backup) and verified deliveries (gate_transfer) first"
        )
    if "verify" not in state["detail"]:
        raise DeletionRefused(f"{dataset}: the backup was never restore-verified")
    manifest, cipher = _manifest(state, keys)
    needed = load_plan(plan_path).dispositions[state["disposition"]].destinations
    have = {
        r["destination"]
        for r in state["detail"].get("deliveries", [])
        if r.get("sha256") == manifest.ciphertext_sha256
    }
    missing = [d for d in needed if d not in have]
    if missing:
        raise DeletionRefused(
            f"{dataset}: no verified receipt equal to the manifest for delivery to "
            f"{', '.join(missing)}: run transfer and gate_transfer first"
        )
    return manifest, cipher


def delete_dataset(
    plan_path: str,
    dataset: str,
    *,
    source: Source,
    keys: KeyStore,
    ledger: Ledger,
    run_id: str,
    actor: str,
    now: str,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Delete exactly the backed-up data of one dataset; resumable; refuses without proof."""
    from retirement import deletion
    from retirement.pipeline import dataset_state

    plan = load_plan(plan_path)
    state = dataset_state(ledger, run_id, dataset)
    if state is None:
        raise DeletionRefused(f"{dataset} was not inventoried in run {run_id}")
    if state["state"] == "deleted":
        return {"dataset": dataset, "state": "deleted", "deleted": 0}
    manifest, cipher = check_proof(plan_path, state, ledger=ledger, run_id=run_id, keys=keys)
    name = DatasetId.parse(dataset)
    kind = state["detail"].get("kind", "table")
    spec = plan.source(name.source)
    resuming = state["state"] in IN_PROGRESS
    detail = state["detail"]  # what the ledger holds for the dataset, kept up to date below
    if not resuming:
        deletion.check_unchanged(source, name, kind, manifest)
        detail = {**detail, "deletion": {"started_at": now}}
        ledger.set_dataset_state(run_id, dataset, "deleting", actor=actor, payload=detail)
        ledger.flush()  # durable before anything is deleted, also inside a Ledger.batch
    identity = [keys.identity(plan.name, state["disposition"])]
    if spec.kind in ("postgres", "mysql", "sqlite"):
        rule = next((r for r in plan.datasets if r.dataset == dataset), None)
        dropped = rule is not None and rule.drop_table
        if dropped and name not in {r.id for r in source.datasets()}:
            result = deletion.DeletionResult(
                "clear", "DROP TABLE (done by an earlier attempt)", 0, 0, 0
            )
        else:
            result = deletion.delete_sql_rows(
                source, name, manifest, cipher, identity, on_rows=on_rows or _progress(dataset)
            )
            if dropped:
                result = deletion.drop_table(source, name, result)
    elif spec.kind == "files":
        result = deletion.delete_file(source, name, manifest)
    else:
        result = deletion.delete_s3_object(source, name)
    ledger.set_dataset_state(
        run_id,
        dataset,
        "deleting",
        actor=actor,
        payload={**detail, "deletion": {**detail.get("deletion", {}), "result": result.as_dict()}},
    )
    log.info(
        "%s: %s (%s deleted, %s of the scope left)",
        dataset,
        result.technique,
        result.deleted,
        result.scoped_left,
    )
    return {"dataset": dataset, "resumed": resuming, **result.as_dict()}


def _progress(dataset: str, every: int = 50_000) -> Callable[[int], None]:
    """Log deletion progress every ``every`` rows (shown in the task's log in the UI)."""
    done = [0, 0]

    def tick(rows: int) -> None:
        done[0] += rows
        if done[0] - done[1] >= every:
            done[1] = done[0]
            log.info("%s: %s rows of the backup's scope processed", dataset, f"{done[0]:,}")

    return tick


# ---------------------------------------------------------------------- gate, certificates


def _erase_destroyed_backups(
    plan: Any,
    checked: list[tuple[dict[str, Any], dict[str, Any]]],
    *,
    keys: KeyStore,
    ledger: Ledger,
    run_id: str,
    actor: str,
) -> set[str]:
    """Crypto-erase the backups of ``destroy`` dispositions that keep none (keep_backup_days
    0), once every dataset of that disposition in the run is verified deleted."""
    from retirement.pipeline_backup import crypto_erase

    verified = {state["dataset"] for state, _ in checked}
    erased = set()
    for name, disp in plan.dispositions.items():
        if disp.action != "destroy" or disp.keep_backup_days:
            continue
        members = [s for s in ledger.dataset_states(run_id) if s["disposition"] == name]
        if not any(s["dataset"] in verified for s in members):
            continue  # nothing of it verified in this gate run (or erased already)
        if all(s["dataset"] in verified or s["state"] == "deleted" for s in members):
            crypto_erase(
                plan.name,
                name,
                keys=keys,
                ledger=ledger,
                actor=actor,
                run_id=run_id,
                reason="destroy disposition keeps no backup (keep_backup_days: 0)",
            )
            erased.add(name)
    return erased


def _backup_copy_fate(plan: Any, state: dict[str, Any], erased: set[str]) -> str:
    disp = plan.dispositions[state["disposition"]]
    if state["disposition"] in erased:
        return "cryptographic erase: its archive identity was destroyed (NIST SP 800-88 purge)"
    if disp.action == "destroy":
        return (
            f"kept encrypted for {disp.keep_backup_days} days, then crypto-erased by the "
            "retention expiry"
        )
    if disp.action == "retain":
        return "kept encrypted in the retention archive until its retention ends"
    return "kept encrypted; the recipient holds its own copy"


def residual_identifiers(
    refs: dict[str, Any], source: Source, dataset: str, kind: str, policy: Any
) -> int:
    """Validated identifiers the inventory's detectors still find in what is left (``refs``:
    the source's datasets by name, listed once per source, not once per dataset)."""
    from retirement.inventory import scan_dataset

    if dataset not in refs:
        return 0  # the dataset itself is gone (a file, an object)
    report = scan_dataset(source, refs[dataset], policy, full=True)
    if kind == "document":
        return 0 if report.rows == 0 else 1
    return sum(sum(c.found.values()) for c in report.columns)


def gate_deletion(
    plan_path: str,
    *,
    open_source: Callable[[str], Source],
    keys: KeyStore,
    ledger: Ledger,
    run_id: str,
    actor: str,
    output_dir: Path,
    now: str,
) -> dict[str, Any]:
    """The scope is empty and no identifier is left, per dataset; then certificates."""
    from retirement import deletion, quality
    from retirement.certificate import write_certificate
    from retirement.pipeline import record_gate, safe_dir

    plan = load_plan(plan_path)
    decided = decision(ledger, run_id) or {}
    rows: list[dict[str, Any]] = []
    checked: list[tuple[dict[str, Any], dict[str, Any]]] = []
    deleting = [s for s in ledger.dataset_states(run_id) if s["state"] in IN_PROGRESS]
    identities: dict[str, list[Any]] = {}  # per disposition, decrypted once
    for source_name, group in groupby(deleting, key=lambda s: DatasetId.parse(s["dataset"]).source):
        with open_source(source_name) as source:
            refs = {r.id: r for r in source.datasets()}  # what is left, listed once
            for state in group:
                name = DatasetId.parse(state["dataset"])
                manifest, cipher = _manifest(state, keys)
                ids = identities.get(state["disposition"])
                if ids is None:
                    ids = identities[state["disposition"]] = [
                        keys.identity(plan.name, state["disposition"])
                    ]
                if hasattr(source, "engine") and name in refs:
                    left = deletion.scoped_count(source, name, manifest, cipher, ids)
                else:
                    left = 1 if name in refs else 0  # a file, object or dropped table: gone
                kind = state["detail"].get("kind", "table")
                found = residual_identifiers(refs, source, name, kind, plan.classification)
                rows.append(
                    {
                        "dataset": state["dataset"],
                        "scoped_left": left,
                        "residual_identifiers": found,
                    }
                )
                checked.append((state, rows[-1]))
    result = quality.run_gate("gate_deletion", quality.deletion_frames(rows))
    failures = list(result.failures)
    summary = {"gate": "gate_deletion", "datasets": len(rows), "failures": failures}
    record_gate(
        ledger, run_id, actor, output_dir / "evidence" / safe_dir(run_id), result, summary=summary
    )
    if failures:
        raise GateFailed("gate_deletion", "; ".join(failures), summary)
    erased = _erase_destroyed_backups(
        plan, checked, keys=keys, ledger=ledger, run_id=run_id, actor=actor
    )
    certificates = []
    signing = keys.signing_key()  # decrypted once, not once per certificate
    folder = output_dir / "certificates" / safe_dir(run_id)
    with ledger.batch():  # one transaction per few hundred certificates
        for state, row in checked:
            cert = _certificate(
                plan,
                state,
                row,
                run_id=run_id,
                now=now,
                actor=actor,
                decided=decided,
                erased=erased,
            )
            path, sha = write_certificate(cert, folder, signing)
            ledger.add_artifact(
                run_id,
                kind="certificate",
                location=str(path),
                size=path.stat().st_size,
                sha256=sha,
                actor=actor,
                dataset=state["dataset"],
            )
            ledger.append(
                "certificate_issued",
                actor=actor,
                run_id=run_id,
                dataset=state["dataset"],
                payload={"path": str(path), "sha256": sha},
            )
            ledger.set_dataset_state(
                run_id,
                state["dataset"],
                "deleted",
                actor=actor,
                payload={**state["detail"], "certificate": str(path)},
            )
            certificates.append(str(path))
    summary["certificates"] = certificates
    return summary


def _certificate(
    plan: Any,
    state: dict[str, Any],
    row: dict[str, Any],
    *,
    run_id: str,
    now: str,
    actor: str,
    decided: dict[str, Any],
    erased: set[str],
) -> dict[str, Any]:
    """The certificate of sanitization of one dataset, before it is signed."""
    from retirement.certificate import TOOL

    spec = plan.source(DatasetId.parse(state["dataset"]).source)
    done = state["detail"]["deletion"]["result"]
    return {
        "certificate_id": "cos-"
        + hashlib.sha256(f"{run_id}|{state['dataset']}".encode()).hexdigest()[:16],
        "issued_at": now,
        "organization": {"name": plan.organization.name, "uscc": plan.organization.uscc},
        "target": {
            "dataset": state["dataset"],
            "kind": state["detail"].get("kind", "table"),
            "source_kind": spec.kind,
            "connection": spec.connection,
            "data_class": state["data_class"],
            "rows": state["rows"],
            "bytes": state["bytes"],
        },
        "sanitization": {
            "method": done["method"],
            "technique": done["technique"],
            "note": done.get("note", ""),
            "tool": TOOL,
        },
        "verification": {
            "method": "rows of the backup's scope counted at the source by key; the "
            "inventory's detectors run over what is left; great-expectations gate",
            "result": "passed",
            **row,
        },
        "performed_by": actor,
        "performed_at": state["detail"]["deletion"].get("started_at"),
        "approval": {
            "approved_by": decided.get("approved_by"),
            "approved_at": decided.get("approved_at"),
            "auto": decided.get("auto", False),
        },
        "backup": {
            "manifest": state["detail"]["backup"]["manifest"],
            "ciphertext_sha256": state["detail"]["backup"]["ciphertext_sha256"],
            "copy": _backup_copy_fate(plan, state, erased),
            "deliveries": [
                {"location": r["location"], "method": r["method"], "sha256": r["sha256"]}
                for r in state["detail"].get("deliveries", [])
            ],
        },
        "ledger": {"run_id": run_id},
    }
