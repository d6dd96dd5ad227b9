"""The deletion phase: the request an approver sees, the decision, and scoped deletion with
its proof checked again at the moment of use.

Called by the DAG's ``deletion_request``, ``approve_deletion`` and ``delete`` (mapped per
batch) tasks; ``gate_deletion`` is in :mod:`retirement.phases.gate_deletion`. The request is
made only on a ledger whose whole chain and this run's table rows verify; it records, in
its own chained event, each dataset's proof (a restore-verified backup and the verified
deliveries its disposition requires), and the approval names that event's hash. Before a
dataset is deleted, every time: the chain from the request to its head verifies and says
nothing since changed the proof; the backup is where it was with its digest and signature;
each delivered copy verifies at its destination; the dataset's ledger row agrees with the
chain; then the deletion itself compares what it removes with the backup (``deletion``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.deletion.proof import (
    PROOF_GATES,
    ProofBook,
    gather,
)
from retirement.deletion.recheck import recheck_backup, recheck_deliveries
from retirement.errors import DeletionRefused
from retirement.evidence.residual import residual_markdown, residual_states
from retirement.ledger.db import canonical_json
from retirement.model.ids import DatasetId, shown
from retirement.model.records import DeletionRecord, added, fold_events
from retirement.model.state import DatasetState, RunState
from retirement.phases.approval import record_decision
from retirement.phases.gate_deletion import decision, gate_deletion
from retirement.phases.preview import refuse_preview
from retirement.sources.capabilities import ObjectDeleter, RowDeleter

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.destinations.base import Destination
    from retirement.ledger.core import Ledger
    from retirement.model.records import DatasetRecord
    from retirement.phases.context import RunContext
    from retirement.phases.foreign_keys import DeletionOrder
    from retirement.sources.base import Source

__all__ = ["decision", "delete_dataset", "deletion_request", "gate_deletion", "record_decision"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- request, decision


def deletion_request(ctx: RunContext) -> dict[str, Any]:
    """What will be destroyed and the proof that it is safe elsewhere, for the approver;
    recorded in the chain (the approval names this event)."""
    refuse_preview(ctx, "deletion_request")
    plan, ledger, run_id, actor = ctx.plan, ctx.ledger, ctx.run_id, ctx.actor
    report = ledger.verify(run_id=run_id)  # the whole chain, and this run's table rows
    proofs, blocked, verdicts = gather(ledger, run_id, plan)
    for gate in PROOF_GATES:
        if verdicts.get(gate) != "gate_passed":
            raise DeletionRefused(
                f"{gate}'s latest verdict in run {run_id} is "
                f"{'failed' if verdicts.get(gate) == 'gate_failed' else 'missing'}: nothing can "
                "be put to an approval until it passes"
            )
    proofs, order = _in_foreign_key_order(ctx, proofs, blocked)
    groups = order.groups
    rows = [_entry(p) for p in proofs]
    totals = {
        "datasets": len(rows),
        "rows": sum(p.rows or 0 for p in proofs),
        "bytes": sum(p.bytes or 0 for p in proofs),
    }
    event = ledger.append(
        "deletion_requested",
        actor=actor,
        run_id=run_id,
        payload={
            **totals,
            "entries": rows,  # (the old payload's list was lost under the "datasets" total)
            "chain": {"head": report.head, "events": report.events},
            "plan_sha256": plan.sha256,
            "foreign_key_order": [g for g in groups if len(g) > 1],
            "cascades": order.cascades,
            "residual_copies": residual_states(plan, ledger, run_id),
            "not_deletable": dict(list(blocked.items())[:1000]),
            "not_deletable_count": len(blocked),
        },
    )
    request = event.hash if event is not None else ledger.head()
    ledger.set_run_state(
        run_id, RunState.AWAITING_APPROVAL, actor=actor, payload={"request": request}
    )
    chain = (request, report.head, report.events)
    body = _body(plan, rows, totals, blocked, chain, _preview_totals(ctx))
    body += _notes(ctx, groups, order.cascades)
    return {
        "body": body,
        "datasets": [r["dataset"] for r in rows],
        "groups": groups,
        "request": request,
    }


def _entry(p: Any) -> dict[str, Any]:
    """One dataset of the request: what the approver sees, and its proof."""
    return {
        "dataset": p.dataset,
        "kind": p.kind,
        "rows": p.rows,
        "bytes": p.bytes,
        "class": p.data_class,
        "disposition": p.disposition,
        "backup_sha256": p.ciphertext_sha256,
        "receipts": [d.location for d in p.deliveries],
        "proof": p.as_json(),
    }


def _in_foreign_key_order(
    ctx: RunContext, proofs: list[Any], blocked: dict[str, str]
) -> tuple[list[Any], DeletionOrder]:
    """The proofs in deletion order, and the order (groups of tables linked by foreign keys,
    cascades); the parents a kept table references move to ``blocked``."""
    from retirement.phases.foreign_keys import order_deletion

    order = order_deletion(ctx, [p.dataset for p in proofs])
    blocked.update(order.kept)
    place = {d: i for i, d in enumerate(d for g in order.groups for d in g)}
    ordered = sorted((p for p in proofs if p.dataset in place), key=lambda p: place[p.dataset])
    return ordered, order


def _preview_totals(ctx: RunContext) -> str:
    """The preview's totals of this run's inventory, as the preview report computes them
    (the notices counted from the sources, which are untouched until the approval)."""
    from retirement.evidence.preview import count_notices, run_totals, totals_markdown
    from retirement.inventory.scan import DatasetReport

    reports = [DatasetReport.from_json(s.inventory) for s in ctx.ledger.dataset_states(ctx.run_id)]
    notices = count_notices(ctx.plan, reports, ctx.source)
    t = run_totals(ctx.plan, reports, today=ctx.today, notices=notices)
    return "What the run does, by disposition (as its preview reports it):\n\n" + totals_markdown(
        t, shown
    )


def _notes(ctx: RunContext, groups: list[list[str]], cascades: list[str]) -> str:
    """The approval text's notes: the residual copies, the foreign-key order, the
    inventory's warnings."""
    from retirement.phases.inventory import inventory_warnings

    text = residual_markdown(residual_states(ctx.plan, ctx.ledger, ctx.run_id), shown)
    linked = [g for g in groups if len(g) > 1]
    if linked:
        text += "\n\nDeleted in foreign-key order (children before parents):\n" + "\n".join(
            "- " + " → ".join(shown(d) for d in g) for g in linked
        )
    if cascades:
        text += "\n\nForeign keys that change kept tables:\n" + "\n".join(
            f"- {shown(c)}" for c in cascades
        )
    warnings = inventory_warnings(ctx.ledger, ctx.run_id)
    if warnings:
        text += "\n\nWarnings of the inventory:\n" + "\n".join(f"- {shown(w)}" for w in warnings)
    return text


def _body(
    plan: Any,
    rows: list[dict[str, Any]],
    totals: dict[str, int],
    blocked: dict[str, str],
    chain: tuple[str, str, int],
    preview: str,
) -> str:
    """The approval text; ``chain``: the request's hash, the chain head and its length;
    ``preview``: the preview's totals (Markdown)."""
    request, head, events = chain
    lines = [
        f"**Permanent deletion at the source** for plan `{shown(plan.name)}` "
        f"({shown(plan.organization.name)}). Every dataset below has a signed, "
        "restore-verified backup; those that go to a successor or an archive also have "
        "verified deliveries.",
        "",
        f"Deletion request `{request[:16]}…`; the ledger's chain verified ({events:,} "
        f"events), chain head `{head}`; plan sha256 `{plan.sha256}`.",
        "",
        preview,
        "",
        "Deleted at the source:",
        "",
        "| dataset | class | rows | bytes | disposition | backup sha256 | delivered to |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {shown(r['dataset'])} | {shown(r['class'])} | {r['rows'] or 0:,} | "
            f"{r['bytes'] or 0:,} | {shown(r['disposition'])} | `{r['backup_sha256'][:16]}…` | "
            f"{', '.join(shown(x) for x in r['receipts']) or '-'} |"
        )
    lines += [
        "",
        f"Total: {totals['datasets']} datasets, {totals['rows']:,} rows, "
        f"{totals['bytes']:,} bytes. Approve to delete; reject to end the run with nothing "
        "deleted.",
    ]
    if blocked:
        lines += ["", f"Not deletable, kept at the source ({len(blocked)}):"]
        lines += [f"- {shown(name)}: {shown(why)}" for name, why in list(blocked.items())[:50]]
    return "\n".join(lines)


# ---------------------------------------------------------------------- deletion


def delete_batch(ctx: RunContext, batch: list[str]) -> list[dict[str, Any]]:
    """Delete every dataset of a batch: one proof book for the task (the whole chain
    verified once), each source and destination opened once."""
    refuse_preview(ctx, "delete")
    from retirement.phases.batching import over_datasets

    book = ProofBook(ctx.ledger, ctx.run_id)
    opened: dict[str, Destination] = {}

    def destination_for(name: str) -> Destination:
        if name not in opened:
            opened[name] = ctx.destination(name)
        return opened[name]

    def work(ctx: RunContext, dataset: str, source: Source) -> dict[str, Any]:
        return delete_dataset(ctx, dataset, source, book=book, destination_for=destination_for)

    try:
        return over_datasets(ctx, batch, work)
    finally:
        for dest in opened.values():
            dest.close()


def delete_dataset(
    ctx: RunContext,
    dataset: str,
    source: Source,
    *,
    book: ProofBook | None = None,
    destination_for: Callable[[str], Destination] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Delete exactly the backed-up data of one dataset, after checking its proof again;
    every attempt checks everything (a retry after a crash as much as the first)."""
    book = book or ProofBook(ctx.ledger, ctx.run_id)
    if dataset in book.deleted:
        return {"dataset": dataset, "state": "deleted", "deleted": 0}
    proof = book.proof(dataset)
    finished = (book.results.get(dataset) or {}).get("result")
    if finished is not None:
        return {"dataset": dataset, "resumed": True, **finished}
    ds = DatasetId.parse(dataset)
    public = load_public_key(ctx.key_store.public_signing_key_pem())
    manifest, cipher = recheck_backup(proof, public)
    recheck_deliveries(proof, manifest, cipher, destination_for)
    row = _agreeing_row(ctx.ledger, ctx.run_id, dataset)
    deletion = row.deletion if row.state is DatasetState.DELETING else None
    started = deletion is not None
    if deletion is None:
        deletion = _started(ctx, ds, source, proof, manifest, book)
    identity = [ctx.key_store.identity(ctx.plan.name, proof.disposition)]

    def sibling(other: DatasetId) -> Any:  # a sheet of the same workbook
        return recheck_backup(book.proof(str(other)), public)[0]

    progress = on_rows or _progress(dataset)
    result = _delete(source, ds, proof, manifest, cipher, identity, sibling, progress)
    done = added(deletion.finished(result.as_dict()))
    ctx.ledger.set_dataset_state(
        ctx.run_id, dataset, DatasetState.DELETING, actor=ctx.actor, payload=done
    )
    log.info("%s: %s (%s deleted)", dataset, result.technique, result.deleted)
    return {"dataset": dataset, "resumed": started, **result.as_dict()}


def _started(
    ctx: RunContext,
    ds: DatasetId,
    source: Source,
    proof: Any,
    manifest: Any,
    book: ProofBook,
) -> DeletionRecord:
    """The first attempt: the table still equals its backup (nothing deleted at all if
    anything changed), then "deleting" committed before anything is deleted."""
    if proof.kind == "table" and isinstance(source, RowDeleter):
        from retirement.deletion.tables import check_unchanged

        check_unchanged(source, ds, proof.kind, manifest)
    deletion = DeletionRecord(started_at=ctx.clock_stamp(), request=book.request.hash)
    ctx.ledger.set_dataset_state(
        ctx.run_id, str(ds), DatasetState.DELETING, actor=ctx.actor, payload=added(deletion)
    )
    ctx.ledger.flush()  # durable before anything is deleted, also inside a Ledger.batch
    return deletion


def _delete(
    source: Source,
    ds: DatasetId,
    proof: Any,
    manifest: Any,
    cipher: Any,
    identity: list[Any],
    sibling: Callable[[DatasetId], Any],
    on_rows: Callable[[int], None],
) -> Any:
    from retirement.deletion import tables as deletion
    from retirement.deletion.objects import delete_object
    from retirement.deletion.result import DeletionResult

    if isinstance(source, RowDeleter):
        with source.errors(f"{ds}: deleting"):
            if proof.drop_table and ds not in {r.id for r in source.datasets()}:
                return DeletionResult("clear", "DROP TABLE (done by an earlier attempt)", 0, 0, 0)
            result = deletion.delete_table_rows(
                source,
                ds,
                manifest,
                cipher,
                identity,
                secret_key=proof.secret_key,
                on_rows=on_rows,
                rewrite=proof.rewrite,
            )
            return deletion.drop_table(source, ds, result) if proof.drop_table else result
    if isinstance(source, ObjectDeleter):
        return delete_object(source, ds, manifest, sibling=sibling)
    raise DeletionRefused(f"{ds}: no way to delete from a {type(source).__name__}")


def _agreeing_row(ledger: Ledger, run_id: str, dataset: str) -> DatasetRecord:
    """The dataset's ledger row, refused unless it is what its chained events fold to."""
    row = ledger.dataset_state(run_id, dataset)
    events = ledger.dataset_events(run_id, dataset)
    folded = fold_events((e.kind, e.payload) for e in events)
    if (
        row is None
        or folded is None
        or any(e.compute_hash() != e.hash for e in events)
        or folded[0] is not row.state
        or canonical_json(folded[1]) != canonical_json(row.detail)
    ):
        raise DeletionRefused(
            f"{dataset}: the ledger's datasets row is not what the chain recorded (edited by "
            "hand?): nothing was deleted; `retirement ledger verify` names the difference"
        )
    return row


def _progress(dataset: str, every: int = 50_000) -> Callable[[int], None]:
    """Log deletion progress every ``every`` rows (shown in the task's log in the UI)."""
    done = [0, 0]

    def tick(rows: int) -> None:
        done[0] += rows
        if done[0] - done[1] >= every:
            done[1] = done[0]
            log.info("%s: %s rows of the backup's scope processed", dataset, f"{done[0]:,}")

    return tick


def auto_approve(ctx: RunContext) -> None:
    """The plan's approval.auto_approve: recorded in the ledger as an auto-approval."""
    record_decision(
        ctx,
        approved=True,
        by="auto-approval (plan approval.auto_approve)",
        at=ctx.clock_stamp(),
        auto=True,
    )
