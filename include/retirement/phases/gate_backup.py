"""gate_backup: every backup of the run restore-verified, then a great-expectations gate on
the restored streams (counts, key uniqueness and not-null, NULLs per column); all or nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.errors import GateFailed, RetirementError
from retirement.gates.record import record_gate
from retirement.model.records import VerifyRecord, added
from retirement.model.state import DatasetState
from retirement.phases.anchor import anchor_gate
from retirement.phases.preview import refuse_preview
from retirement.vault.verify import verify_backup

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.model.records import DatasetRecord
    from retirement.phases.context import RunContext
    from retirement.vault.verify import VerifyReport


def gate_backup(ctx: RunContext) -> dict[str, Any]:
    """Restore-verify every backup (signature, ciphertext digest, decrypt, recount, row
    digest, profile), gate the results; mark each dataset verified only if all pass."""
    refuse_preview(ctx, "gate_backup")
    from retirement.gates import quality

    ledger, run_id = ctx.ledger, ctx.run_id
    failures: list[str] = []
    ds_rows: list[dict[str, Any]] = []
    col_rows: list[dict[str, Any]] = []
    verified = []
    recorded = {a["location"]: a["sha256"] for a in ledger.artifacts(run_id, kind="manifest")}
    public = load_public_key(ctx.key_store.public_signing_key_pem())
    for state in ledger.dataset_states(run_id):
        report = _verify(ctx, state, failures, recorded, public)
        if report is None:
            continue
        # what marking it verified needs, not its record or the report: one per dataset
        verified.append((state.dataset, state.state, VerifyRecord(report.summary())))
        if report.manifest.format == "csv":
            _profile_rows(state, report, ds_rows, col_rows)
    result = quality.run_gate("gate_backup", quality.backup_frames(ds_rows, col_rows))
    failures += list(result.failures)
    summary = {"gate": "gate_backup", "verified": len(verified), "failures": failures}
    record_gate(ledger, run_id, ctx.actor, ctx.layout.evidence(run_id), result, summary=summary)
    if failures:
        raise GateFailed("gate_backup", "; ".join(failures), summary)
    with ledger.batch():
        for dataset, now, verify in verified:
            if now is not DatasetState.BACKED_UP:
                continue  # verified before (or delivered since): a re-run changes nothing
            ledger.set_dataset_state(
                run_id,
                dataset,
                DatasetState.BACKUP_VERIFIED,
                actor=ctx.actor,
                payload=added(verify),
            )
    anchor_gate(ctx, "gate_backup")
    return summary


def _verify(
    ctx: RunContext,
    state: DatasetRecord,
    failures: list[str],
    recorded: dict[str, str],
    public: Ed25519PublicKey,
) -> VerifyReport | None:
    backup = state.backup
    if backup is None:
        failures.append(f"{state.dataset}: no backup")
        return None
    manifest_path = Path(backup.manifest)
    if manifest_path.exists():
        actual = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        if recorded.get(str(manifest_path)) != actual:
            failures.append(
                f"{state.dataset}: {manifest_path.name} differs from the manifest recorded "
                "in the ledger"
            )
    try:
        identity = ctx.key_store.identity(ctx.plan.name, str(state.disposition))
        return verify_backup(manifest_path, public, [identity])
    except RetirementError as exc:
        failures.append(str(exc))
        return None


def _profile_rows(
    state: DatasetRecord,
    report: VerifyReport,
    ds_rows: list[dict[str, Any]],
    col_rows: list[dict[str, Any]],
) -> None:
    fp = report.manifest.fingerprint
    ds_rows.append(
        {
            "dataset": state.dataset,
            "rows_source": fp.rows,
            "rows_restored": report.rows,
            "rows_inventory": state.inventory["rows"],
            "key_nulls": report.key_nulls,
            "key_duplicates": report.key_duplicates,
        }
    )
    col_rows += [
        {"column": f"{state.dataset}.{c['name']}", "source_nulls": want, "restored_nulls": got}
        for c, want, got in zip(
            report.manifest.columns, fp.null_counts, report.null_counts, strict=False
        )
    ]
