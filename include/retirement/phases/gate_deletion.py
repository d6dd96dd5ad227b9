"""The gate after deletion and the certificates of sanitization.

Called by the DAG's ``gate_deletion``. For every dataset whose deletion finished under the
approved request (read from the chain, checked to the head), it finds what is left of the
backup at the source by an independent method (``retirement.deletion.check``: the rows left, line by
line against the backup's rows; files and objects by digest or version), runs the
inventory's detectors over what is left, and lets a great-expectations suite require both
to be zero. Only then is each dataset marked deleted and certified, with the count of the
backup's rows that actually vanished.
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.deletion.proof import Proof, ProofBook
from retirement.deletion.recheck import recheck_backup
from retirement.errors import GateFailed
from retirement.gates.record import record_gate
from retirement.model.ids import DatasetId
from retirement.model.state import DatasetState
from retirement.phases.anchor import anchor_gate
from retirement.phases.certify import certify
from retirement.phases.preview import refuse_preview

if TYPE_CHECKING:
    from retirement.ledger.core import Ledger
    from retirement.phases.context import RunContext
    from retirement.sources.base import Source


def decision(ledger: Ledger, run_id: str) -> dict[str, Any] | None:
    """The latest approval decision of the run, or None."""
    decided = ledger.events_of(run_id, ("deletion_approved", "deletion_rejected"))
    return decided[-1].payload if decided else None


def residual_identifiers(
    refs: dict[DatasetId, Any], source: Source, dataset: DatasetId, kind: str, policy: Any
) -> int:
    """Validated identifiers the inventory's detectors still find in what is left (``refs``:
    the source's datasets, listed once per source, not once per dataset)."""
    from retirement.inventory.scan import scan_dataset

    if dataset not in refs:
        return 0  # the dataset itself is gone (a file, an object, a dropped table)
    report = scan_dataset(source, refs[dataset], policy, full=True)
    if kind == "document":
        return 0 if report.rows == 0 else 1
    return sum(sum(c.found.values()) for c in report.columns)


def gate_deletion(ctx: RunContext) -> dict[str, Any]:
    """Nothing of each backup is left and no identifier is left, per dataset; certificates."""
    refuse_preview(ctx, "gate_deletion")
    from retirement.gates import quality

    book = ProofBook(ctx.ledger, ctx.run_id)
    unfinished = sorted(
        d for d, r in book.results.items() if "result" not in r and d not in book.deleted
    )
    todo = sorted(d for d, r in book.results.items() if "result" in r and d not in book.deleted)
    checked, facts = _what_is_left(ctx, book, todo)
    rows = [row for _, row in checked]
    result = quality.run_gate("gate_deletion", quality.deletion_frames(rows))
    failures = list(result.failures) + [
        f"{d}: its deletion did not finish (the delete task failed or was marked done): "
        "clear delete"
        for d in unfinished
    ]
    summary = {"gate": "gate_deletion", "datasets": len(rows), "failures": failures}
    evidence = ctx.layout.evidence(ctx.run_id)
    record_gate(ctx.ledger, ctx.run_id, ctx.actor, evidence, result, summary=summary)
    if failures:
        raise GateFailed("gate_deletion", "; ".join(failures), summary)
    erased = _erase_destroyed_backups(ctx, checked)
    summary["certificates"] = certify(ctx, book, checked, facts, erased)
    anchor_gate(ctx, "gate_deletion")
    return summary


def _what_is_left(
    ctx: RunContext, book: ProofBook, todo: list[str]
) -> tuple[list[tuple[Proof, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Per dataset: what is left of its backup at the source, and identifiers left; and
    the facts its certificate states (where it was, the individuals it was about)."""
    from retirement.deletion.check import left_of_backup
    from retirement.evidence.facts import count_individuals, location

    plan, keys = ctx.plan, ctx.key_store
    public = load_public_key(keys.public_signing_key_pem())
    checked: list[tuple[Proof, dict[str, Any]]] = []
    facts: dict[str, dict[str, Any]] = {}
    identities: dict[str, list[Any]] = {}  # per disposition, decrypted once
    for source_name, group in groupby(todo, key=lambda d: DatasetId.parse(d).source):
        with ctx.source(source_name) as source:
            refs = {r.id: r for r in source.datasets()}  # what is left, listed once
            for dataset in group:
                proof = book.proofs[dataset]
                ds = DatasetId.parse(dataset)
                manifest, cipher = recheck_backup(proof, public)
                if proof.disposition not in identities:
                    identities[proof.disposition] = [keys.identity(plan.name, proof.disposition)]
                left = left_of_backup(source, ds, manifest, cipher, identities[proof.disposition])
                found = residual_identifiers(refs, source, ds, proof.kind, plan.classification)
                checked.append(
                    (proof, {"dataset": dataset, **left.as_dict(), "residual_identifiers": found})
                )
                keys_of = plan.customer_keys.get(dataset)
                facts[dataset] = {
                    "location": location(source, ds),
                    "plaintext_bytes": manifest.plaintext_size,
                    "individuals": count_individuals(
                        manifest, cipher, identities[proof.disposition], keys_of
                    )
                    if keys_of
                    else None,
                }
    return checked, facts


def _erase_destroyed_backups(
    ctx: RunContext, checked: list[tuple[Proof, dict[str, Any]]]
) -> set[str]:
    """Crypto-erase the backups of ``destroy`` dispositions that keep none (keep_backup_days
    0), once every dataset of that disposition in the run is verified deleted."""
    from retirement.phases.erase import crypto_erase

    plan, ledger, run_id = ctx.plan, ctx.ledger, ctx.run_id
    verified = {proof.dataset for proof, _ in checked}
    erased = set()
    for name, disp in plan.dispositions.items():
        if disp.action != "destroy" or disp.keep_backup_days:
            continue
        members = [s for s in ledger.dataset_states(run_id) if s.disposition == name]
        if not any(s.dataset in verified for s in members):
            continue  # nothing of it verified in this gate run (or erased already)
        if all(s.dataset in verified or s.state is DatasetState.DELETED for s in members):
            crypto_erase(
                plan.name,
                name,
                keys=ctx.key_store,
                ledger=ledger,
                actor=ctx.actor,
                run_id=run_id,
                reason="destroy disposition keeps no backup (keep_backup_days: 0)",
            )
            erased.add(name)
    return erased
