"""The backup phase: back up one dataset, then restore-verify every backup of the run.

Called by the DAG's ``backup`` (mapped per dataset) and ``gate_backup`` tasks.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.errors import GateFailed, IntegrityError, RetirementError
from retirement.model.ids import DatasetId
from retirement.model.manifest import Manifest
from retirement.phases.pinned import run_plan
from retirement.vault.verify import verify_backup
from retirement.vault.write import back_up

if TYPE_CHECKING:
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan
    from retirement.sources.base import Source

log = logging.getLogger(__name__)


def recipients_for(plan: Plan, disposition: str, keys: KeyStore) -> list[str]:
    """The archive key of (plan, disposition), plus the recipient's key for a transfer."""
    out = [keys.archive_key(plan.name, disposition).recipient]
    disp = plan.dispositions[disposition]
    if disp.action == "transfer" and disp.recipient:
        out.append(plan.recipients[disp.recipient].age_public_key)
    return out


def backup_dataset(
    plan_path: str,
    dataset: str,
    *,
    source: Source,
    keys: KeyStore,
    ledger: Ledger,
    run_id: str,
    actor: str,
    vault: Path,
    now: str,
) -> dict[str, Any]:
    """Back up one inventoried dataset; re-running with an unchanged source keeps the first."""
    plan = run_plan(ledger, run_id, plan_path)
    state = _state(ledger, run_id, dataset)
    if state["state"] in ("deleting", "deleted"):
        backup = state["detail"]["backup"]
        log.info("%s is being or was deleted at the source: its backup stands", dataset)
        return {
            "dataset": dataset,
            "rows": backup["rows"],
            "manifest": backup["manifest"],
            "new": False,
        }
    name = DatasetId.parse(dataset)
    disposition = state["disposition"]
    detail = state["detail"]
    decided = detail.get("key")  # the inventory decided the key (and refused bad ones)
    if decided is not None:
        keys_cols = tuple(decided["columns"])
    else:
        rule = next((r for r in plan.datasets if r.dataset == dataset), None)
        keys_cols = (
            tuple(rule.key)
            if rule and rule.key
            else tuple(getattr(source, "key_columns", lambda _n: [])(name))
        )
    result = back_up(
        source,
        name,
        qualified=dataset,
        kind=detail.get("kind", "table"),
        plan=plan.name,
        disposition=disposition,
        recipients=recipients_for(plan, disposition, keys),
        out_dir=vault,
        signing_key=keys.signing_key(),
        created_at=now,
        key_columns=keys_cols,
        extra=_use_terms(plan, disposition, now),
    )
    previous = detail.get("backup")  # in any later state too (verified, delivered, ...)
    fp = result.manifest.fingerprint
    damaged = _damaged(previous) if previous else None
    if damaged:
        log.warning(
            "%s: the kept backup is not usable (%s): a new version is made", dataset, damaged
        )
    same = previous and previous["row_digest"] == fp.row_digest and previous["rows"] == fp.rows
    if same and not damaged:
        result.ciphertext_path.unlink()
        result.manifest_path.with_name(result.manifest_path.name + ".sig").unlink()
        result.manifest_path.unlink()
        log.info("%s unchanged since its backup: kept %s", dataset, previous["manifest"])
        return {"dataset": dataset, "rows": fp.rows, "manifest": previous["manifest"], "new": False}
    reason = (
        "first backup"
        if not previous
        else f"the previous backup is not usable: {damaged}"
        if damaged
        else (
            f"the source changed since the backup of {previous['created_at']}: rows "
            f"{previous['rows']} -> {fp.rows}, row digest {previous['row_digest'][:12]}… -> "
            f"{fp.row_digest[:12]}…"
        )
    )
    m = result.manifest
    ledger.add_artifact(
        run_id,
        kind="backup",
        location=str(result.ciphertext_path),
        size=m.ciphertext_size,
        sha256=m.ciphertext_sha256,
        actor=actor,
        dataset=dataset,
    )
    raw = result.manifest_path.read_bytes()
    ledger.add_artifact(
        run_id,
        kind="manifest",
        location=str(result.manifest_path),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        actor=actor,
        dataset=dataset,
    )
    backup = {
        "manifest": str(result.manifest_path),
        "rows": fp.rows,
        "row_digest": fp.row_digest,
        "ciphertext_sha256": m.ciphertext_sha256,
        "created_at": now,
        "reason": reason,
    }
    ledger.set_dataset_state(
        run_id, dataset, "backed_up", actor=actor, payload={**detail, "backup": backup}
    )
    return {"dataset": dataset, "rows": fp.rows, "manifest": str(result.manifest_path), "new": True}


def gate_backup(
    plan_path: str,
    *,
    keys: KeyStore,
    ledger: Ledger,
    run_id: str,
    actor: str,
    output_dir: Path | None = None,
) -> dict[str, Any]:
    """Restore-verify every backup of the run, then a great-expectations gate on the restored
    streams (counts, key uniqueness and not-null, NULLs per column); all or nothing."""
    from retirement.gates import quality
    from retirement.phases.inventory import record_gate, safe_dir

    plan = run_plan(ledger, run_id, plan_path)
    public = load_public_key(keys.public_signing_key_pem())
    failures: list[str] = []
    ds_rows: list[dict[str, Any]] = []
    col_rows: list[dict[str, Any]] = []
    verified = []
    recorded = {a["location"]: a["sha256"] for a in ledger.artifacts(run_id, kind="manifest")}
    for state in ledger.dataset_states(run_id):
        backup = state["detail"].get("backup")
        if backup is None:
            failures.append(f"{state['dataset']}: no backup")
            continue
        manifest_path = Path(backup["manifest"])
        if manifest_path.exists():
            actual = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
            if recorded.get(str(manifest_path)) != actual:
                failures.append(
                    f"{state['dataset']}: {manifest_path.name} differs from the "
                    "manifest recorded in the ledger"
                )
        try:
            identity = keys.identity(plan.name, state["disposition"])
            report = verify_backup(manifest_path, public, [identity])
        except (IntegrityError, RetirementError) as exc:
            failures.append(str(exc))
            continue
        verified.append((state, report.summary()))  # not the report: one per dataset
        fp = report.manifest.fingerprint
        if report.manifest.format == "csv":
            ds_rows.append(
                {
                    "dataset": state["dataset"],
                    "rows_source": fp.rows,
                    "rows_restored": report.rows,
                    "rows_inventory": state["detail"]["rows"],
                    "key_nulls": report.key_nulls,
                    "key_duplicates": report.key_duplicates,
                }
            )
            col_rows += [
                {
                    "column": f"{state['dataset']}.{c['name']}",
                    "source_nulls": want,
                    "restored_nulls": got,
                }
                for c, want, got in zip(
                    report.manifest.columns, fp.null_counts, report.null_counts, strict=False
                )
            ]
    result = quality.run_gate("gate_backup", quality.backup_frames(ds_rows, col_rows))
    failures += list(result.failures)
    summary = {"gate": "gate_backup", "verified": len(verified), "failures": failures}
    if output_dir is not None:
        record_gate(
            ledger,
            run_id,
            actor,
            output_dir / "evidence" / safe_dir(run_id),
            result,
            summary=summary,
        )
    else:
        ledger.append(
            "gate_passed" if not failures else "gate_failed",
            actor=actor,
            run_id=run_id,
            payload=summary,
        )
    if failures:
        raise GateFailed("gate_backup", "; ".join(failures), summary)
    with ledger.batch():
        for state, verify in verified:
            if state["state"] != "backed_up":
                continue  # verified before (or delivered since): a re-run changes nothing
            ledger.set_dataset_state(
                run_id,
                state["dataset"],
                "backup_verified",
                actor=actor,
                payload={**state["detail"], "verify": verify},
            )
    return summary


def _damaged(backup: dict[str, Any]) -> str | None:
    """Why a recorded backup cannot be kept (its manifest or age file gone, or not the bytes
    the manifest names), or None."""
    from retirement.vault.verify import file_sha256

    path = Path(backup["manifest"])
    try:
        manifest = Manifest.from_bytes(path.read_bytes(), where=str(path))
        size, sha = file_sha256(path.parent / manifest.ciphertext_file)
    except (OSError, IntegrityError) as exc:
        return f"{path.name}: {getattr(exc, 'strerror', None) or exc}"
    if (size, sha) != (manifest.ciphertext_size, backup["ciphertext_sha256"]):
        return f"{manifest.ciphertext_file} is not the file its manifest names (altered)"
    return None


def _use_terms(plan: Any, disposition: str, now: str) -> dict[str, Any]:
    """What the manifest says about the archive's use: its action and, for a retained
    archive, the legal basis and the end of retention (restores then need a reason)."""
    from datetime import date, timedelta

    from retirement.plan.retention import retain_until

    disp = plan.dispositions[disposition]
    terms: dict[str, Any] = {"action": disp.action}
    if disp.action == "destroy":
        keep = date.fromisoformat(now[:10]) + timedelta(days=disp.keep_backup_days)
        terms["keep_until"] = keep.isoformat()
    if disp.action == "retain" and disp.retention is not None:
        until = retain_until(disp.retention, date.fromisoformat(now[:10]))
        terms["retention"] = {
            "legal_basis": disp.retention.legal_basis,
            "retain_until": until.isoformat() if until else "permanent",
        }
    return terms


def _state(ledger: Ledger, run_id: str, dataset: str) -> dict[str, Any]:
    from retirement.phases.inventory import dataset_state

    state = dataset_state(ledger, run_id, dataset)
    if state is None:
        raise GateFailed("backup", f"{dataset} was not inventoried in run {run_id}")
    return state


def crypto_erase(
    plan_name: str,
    disposition: str,
    *,
    keys: KeyStore,
    ledger: Ledger,
    actor: str,
    reason: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Destroy the archive identity of (plan, disposition) and record it in the ledger.

    Every backup encrypted to it (and to no other key) can no longer be decrypted by anyone.
    """
    recipient = keys.archive_key(plan_name, disposition).recipient
    path = keys.destroy(plan_name, disposition)
    event = ledger.append(
        "crypto_erased",
        actor=actor,
        run_id=run_id,
        payload={
            "plan": plan_name,
            "disposition": disposition,
            "recipient": recipient,
            "identity_file": str(path),
            "method": "cryptographic erase (NIST SP 800-88 purge)",
            "reason": reason,
        },
    )
    return {"plan": plan_name, "disposition": disposition, "event": event.seq}
