"""backup: each dataset streamed into an age-encrypted, signed backup (mapped batches).

A re-run with an unchanged source keeps the backup it made (unless that one is missing or
damaged); a changed source makes a new version and says why. A dataset whose deletion has
begun keeps the backup its deletion is proven by.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.errors import GateFailed, IntegrityError
from retirement.model.ids import DatasetId
from retirement.model.manifest import Manifest
from retirement.model.records import BackupRecord, added
from retirement.model.state import DatasetState
from retirement.phases.batching import over_datasets
from retirement.phases.preview import refuse_preview
from retirement.sources.capabilities import KeyedSource
from retirement.vault.write import back_up

if TYPE_CHECKING:
    from retirement.crypto.keys import KeyStore
    from retirement.model.records import DatasetRecord
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan
    from retirement.sources.base import Source
    from retirement.vault.write import BackupResult

log = logging.getLogger(__name__)


def back_up_batch(ctx: RunContext, batch: list[str]) -> list[dict[str, Any]]:
    """Back up every dataset of a batch (each source opened once)."""
    refuse_preview(ctx, "backup")
    return over_datasets(ctx, batch, backup_dataset)


def recipients_for(plan: Plan, disposition: str, keys: KeyStore) -> list[str]:
    """The archive key of (plan, disposition), plus the recipient's key for a transfer."""
    out = [keys.archive_key(plan.name, disposition).recipient]
    disp = plan.dispositions[disposition]
    if disp.action == "transfer" and disp.recipient:
        out.append(plan.recipients[disp.recipient].age_public_key)
    return out


def backup_dataset(ctx: RunContext, dataset: str, source: Source) -> dict[str, Any]:
    """Back up one inventoried dataset; re-running with an unchanged source keeps the first."""
    state = ctx.ledger.dataset_state(ctx.run_id, dataset)
    if state is None:
        raise GateFailed("backup", f"{dataset} was not inventoried in run {ctx.run_id}")
    previous = state.backup  # in any later state too (verified, delivered, ...)
    if state.state.deletion_begun:
        if previous is None:  # (deletion is only ever proven by a backup)
            raise GateFailed("backup", f"{dataset} is {state.state} but has no backup")
        log.info("%s is being or was deleted at the source: its backup stands", dataset)
        return _summary(dataset, previous.rows, previous.manifest, new=False)
    result = _back_up(ctx, dataset, source, state)
    fp = result.manifest.fingerprint
    damaged = _damaged(previous) if previous else None
    if damaged:
        log.warning(
            "%s: the kept backup is not usable (%s): a new version is made", dataset, damaged
        )
    if (
        previous
        and not damaged
        and (previous.row_digest, previous.rows) == (fp.row_digest, fp.rows)
    ):
        _discard(result)
        log.info("%s unchanged since its backup: kept %s", dataset, previous.manifest)
        return _summary(dataset, fp.rows, previous.manifest, new=False)
    _record(ctx, dataset, result, _reason(previous, damaged, fp))
    return _summary(dataset, fp.rows, str(result.manifest_path), new=True)


def _summary(dataset: str, rows: int, manifest: str, *, new: bool) -> dict[str, Any]:
    """What the task returns (to XCom) for one dataset."""
    return {"dataset": dataset, "rows": rows, "manifest": manifest, "new": new}


def _back_up(ctx: RunContext, dataset: str, source: Source, state: DatasetRecord) -> BackupResult:
    plan, keys = ctx.plan, ctx.key_store
    name = DatasetId.parse(dataset)
    disposition = str(state.disposition)
    decided = state.detail.get("key")  # the inventory decided the key (and refused bad ones)
    if decided is not None:
        columns = tuple(decided["columns"])
    else:  # an inventory recorded before keys were decided
        rule = next((r for r in plan.datasets if r.dataset == dataset), None)
        if rule and rule.key:
            columns = tuple(rule.key)
        elif isinstance(source, KeyedSource):
            columns = tuple(source.key_columns(name))
        else:
            columns = ()
    return back_up(
        source,
        name,
        qualified=dataset,
        kind=state.kind,
        plan=plan.name,
        disposition=disposition,
        recipients=recipients_for(plan, disposition, keys),
        out_dir=ctx.layout.vault,
        signing_key=keys.signing_key(),
        created_at=ctx.clock_stamp(),
        key_columns=columns,
        extra=_use_terms(ctx, disposition),
    )


def _discard(result: BackupResult) -> None:
    result.ciphertext_path.unlink()
    result.manifest_path.with_name(result.manifest_path.name + ".sig").unlink()
    result.manifest_path.unlink()


def _reason(previous: BackupRecord | None, damaged: str | None, fp: Any) -> str:
    if not previous:
        return "first backup"
    if damaged:
        return f"the previous backup is not usable: {damaged}"
    return (
        f"the source changed since the backup of {previous.created_at}: rows "
        f"{previous.rows} -> {fp.rows}, row digest {previous.row_digest[:12]}… -> "
        f"{fp.row_digest[:12]}…"
    )


def _record(ctx: RunContext, dataset: str, result: BackupResult, reason: str) -> None:
    """The backup's two files as artifacts, then the dataset backed up (in the chain)."""
    m, ledger = result.manifest, ctx.ledger
    ledger.add_artifact(
        ctx.run_id,
        kind="backup",
        location=str(result.ciphertext_path),
        size=m.ciphertext_size,
        sha256=m.ciphertext_sha256,
        actor=ctx.actor,
        dataset=dataset,
    )
    raw = result.manifest_path.read_bytes()
    ledger.add_artifact(
        ctx.run_id,
        kind="manifest",
        location=str(result.manifest_path),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        actor=ctx.actor,
        dataset=dataset,
    )
    backup = BackupRecord(
        manifest=str(result.manifest_path),
        rows=m.fingerprint.rows,
        row_digest=m.fingerprint.row_digest,
        ciphertext_sha256=m.ciphertext_sha256,
        created_at=m.created_at,
        reason=reason,
    )
    ledger.set_dataset_state(
        ctx.run_id, dataset, DatasetState.BACKED_UP, actor=ctx.actor, payload=added(backup)
    )


def _damaged(backup: BackupRecord) -> str | None:
    """Why a recorded backup cannot be kept (its manifest or age file gone, or not the bytes
    the manifest names), or None."""
    from retirement.formats.digests import file_sha256

    path = Path(backup.manifest)
    try:
        manifest = Manifest.from_bytes(path.read_bytes(), where=str(path))
        size, sha = file_sha256(path.parent / manifest.ciphertext_file)
    except (OSError, IntegrityError) as exc:
        return f"{path.name}: {getattr(exc, 'strerror', None) or exc}"
    if (size, sha) != (manifest.ciphertext_size, backup.ciphertext_sha256):
        return f"{manifest.ciphertext_file} is not the file its manifest names (altered)"
    return None


def _use_terms(ctx: RunContext, disposition: str) -> dict[str, Any]:
    """What the manifest says about the archive's use: its action and, for a retained
    archive, the legal basis and the end of retention (restores then need a reason)."""
    from retirement.plan.retention import retain_until

    disp = ctx.plan.dispositions[disposition]
    terms: dict[str, Any] = {"action": disp.action}
    if disp.action == "destroy":
        terms["keep_until"] = (ctx.today + timedelta(days=disp.keep_backup_days)).isoformat()
    if disp.action == "retain" and disp.retention is not None:
        until = retain_until(disp.retention, ctx.today)
        terms["retention"] = {
            "legal_basis": disp.retention.legal_basis,
            "retain_until": until.isoformat() if until else "permanent",
        }
    return terms
