"""The certificates of sanitization that ``gate_deletion`` issues, one per dataset.

Every time and actor on a certificate is read from the chained events, never from a clock
or the run's trigger time: the approval as decided (and when the ledger recorded it), the
deletion's start and end (the ``dataset_deleting`` events) and the task that deleted, the
verification (the gate's verdict, which issues the certificates). So approval < deletion <
issue holds on every certificate, and a certificate issued again from the same ledger is
the same, byte for byte. The people are the plan's (``sanitization``: who performs, who
verifies; the organization's DPO) and the approver as the approval recorded them.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from retirement.evidence.residual import residual_states
from retirement.model.ids import DatasetId
from retirement.model.records import CertificateRecord, added
from retirement.model.state import DatasetState

if TYPE_CHECKING:
    from retirement.deletion.proof import Proof, ProofBook
    from retirement.phases.context import RunContext
    from retirement.plan.model import Person, Plan

STANDARD = "NIST SP 800-88 Rev. 2 (September 2025) sanitization record; PIPL Art. 47"
VERIFICATION = (
    "every row left at the source compared with the backup's rows (SHA-256 of each row in the "
    "backup's own line format; files and objects by digest or version); the inventory's "
    "detectors run over what is left; great-expectations gate"
)


def certify(
    ctx: RunContext,
    book: ProofBook,
    checked: list[tuple[Proof, dict[str, Any]]],
    facts: dict[str, dict[str, Any]],
    erased: set[str],
) -> list[str]:
    """Write, sign and record the certificate of every dataset in ``checked``; mark each
    deleted. Their verification is the gate's latest verdict (recorded just before)."""
    ledger, run_id, actor = ctx.ledger, ctx.run_id, ctx.actor
    verdicts = [
        e
        for e in ledger.events_of(run_id, ("gate_passed",))
        if e.payload.get("gate") == "gate_deletion"
    ]
    verified = {"at": verdicts[-1].at if verdicts else None, "by": actor}
    residual = residual_states(ctx.plan, ledger, run_id)
    book.refresh()  # the deletions' events up to now
    certificates = []
    signing = ctx.key_store.signing_key()  # decrypted once, not once per certificate
    with ledger.batch():  # one transaction per few hundred certificates
        for proof, row in checked:
            cert = certificate(
                ctx.plan,
                run_id,
                proof,
                row,
                book.results[proof.dataset],
                performed=book.performed.get(proof.dataset, {}),
                decided=book.decision or {},
                verified=verified,
                facts=facts.get(proof.dataset, {}),
                erased=erased,
            )
            cert["residual_copies"] = residual
            certificates.append(_issue(ctx, proof.dataset, cert, signing))
    return certificates


def _issue(ctx: RunContext, dataset: str, cert: dict[str, Any], signing: Any) -> str:
    """Write and sign one certificate, record it, mark its dataset deleted."""
    from retirement.evidence.certificate import write_certificate

    ledger, run_id, actor = ctx.ledger, ctx.run_id, ctx.actor
    languages = ctx.plan.organization.languages
    path, sha = write_certificate(cert, ctx.layout.certificates(run_id), signing, languages)
    ledger.add_artifact(
        run_id, kind="certificate", location=path, sha256=sha, actor=actor, dataset=dataset
    )
    ledger.append(
        "certificate_issued",
        actor=actor,
        run_id=run_id,
        dataset=dataset,
        payload={"path": str(path), "sha256": sha},
    )
    ledger.set_dataset_state(
        run_id,
        dataset,
        DatasetState.DELETED,
        actor=actor,
        payload=added(CertificateRecord(str(path))),
    )
    return str(path)


def certificate_id(run_id: str, dataset: str) -> str:
    return "cos-" + hashlib.sha256(f"{run_id}|{dataset}".encode()).hexdigest()[:16]


def person(who: Person | None, **more: Any) -> dict[str, Any]:
    """A person of the plan as a certificate names them (None fields when the plan has none)."""
    named = who.model_dump() if who is not None else {"name": None, "title": None, "contact": None}
    return {**more, **named}


def certificate(
    plan: Plan,
    run_id: str,
    proof: Proof,
    row: dict[str, Any],
    done: dict[str, Any],
    *,
    performed: dict[str, str],
    decided: dict[str, Any],
    verified: dict[str, Any],
    facts: dict[str, Any],
    erased: set[str],
) -> dict[str, Any]:
    """The certificate of sanitization of one dataset, before it is signed."""
    from retirement.evidence.certificate import TOOL

    spec = plan.source(DatasetId.parse(proof.dataset).source)
    result, disp = done["result"], plan.dispositions[proof.disposition]
    sanitizer = plan.sanitization
    return {
        "certificate_id": certificate_id(run_id, proof.dataset),
        "type": "deletion",
        "standard": STANDARD,
        "issued_at": verified["at"],
        "organization": {
            "name": plan.organization.name,
            "uscc": plan.organization.uscc,
            "dpo": person(plan.organization.dpo),
        },
        "target": _target(proof, spec, row, facts),
        "legal_basis": _legal_basis(disp),
        "impact_assessment": disp.impact_assessment.model_dump()
        if disp.impact_assessment
        else None,
        "sanitization": {
            "method": result["method"],
            "technique": result["technique"],
            "note": result.get("note", ""),
            "tool": TOOL,
            "organization": sanitizer.organization if sanitizer else None,
        },
        "performed_by": person(
            sanitizer.performed_by if sanitizer else None, task=performed.get("by")
        ),
        "performed_at": performed.get("started_at"),
        "completed_at": performed.get("finished_at"),
        "verification": {
            "method": VERIFICATION,
            "result": "passed",
            "verified_at": verified["at"],
            "verified_by": person(
                sanitizer.verified_by if sanitizer else None, task=verified["by"]
            ),
            **row,
        },
        "approval": _approval(plan, decided),
        "backup": _backup_section(plan, proof, erased),
        "ledger": {"run_id": run_id},
    }


def _target(proof: Proof, spec: Any, row: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    bytes_, basis = proof.bytes, "as inventoried"
    if bytes_ is None and facts.get("plaintext_bytes") is not None:
        bytes_, basis = facts["plaintext_bytes"], "the backup's plaintext (CSV as exported)"
    individuals = facts.get("individuals") or {}
    return {
        "dataset": proof.dataset,
        "kind": proof.kind,
        "source_kind": spec.kind,
        "connection": spec.connection,
        "location": facts.get("location"),
        "data_class": proof.data_class,
        "rows": row["vanished"],
        "bytes": bytes_,
        "bytes_basis": basis if bytes_ is not None else None,
        "individuals": individuals.get("count"),
        "individuals_basis": individuals or None,
    }


def _legal_basis(disp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"deletion": disp.legal_basis.deletion}
    if disp.action == "transfer":
        out["transfer"] = disp.legal_basis.transfer
    if disp.retention is not None:
        out["retention"] = disp.retention.legal_basis
    return out


def _approval(plan: Plan, decided: dict[str, Any]) -> dict[str, Any]:
    """Who approved and when, from the approval's event; their role when the plan names
    them among its approvers."""
    approver = dict(decided.get("approver") or {})
    names = {approver.get("name"), approver.get("id"), decided.get("approved_by")} - {None}
    for named in plan.approval.approvers:
        if named.name in names or named.user in names or (named.email and named.email in names):
            approver.update(role=named.role, **({"email": named.email} if named.email else {}))
    return {
        "approved_by": decided.get("approved_by"),
        "approver": approver or None,
        "approved_at": decided.get("approved_at"),
        "recorded_at": decided.get("at"),
        "auto": decided.get("auto", False),
        "request": decided.get("request"),
        # every distinct approver of the request (approval.required of them)
        "approvers": [
            {"by": a.get("by"), "user": a.get("user"), "at": a.get("at")}
            for a in decided.get("approvals")
            or [{"by": decided.get("approved_by"), "at": decided.get("approved_at")}]
        ],
    }


def _backup_copy_fate(plan: Plan, disposition: str, erased: set[str]) -> str:
    disp = plan.dispositions[disposition]
    if disposition in erased:
        return "cryptographic erase: its archive identity was destroyed (NIST SP 800-88 purge)"
    if disp.action == "destroy":
        return (
            f"kept encrypted for {disp.keep_backup_days} days, then crypto-erased by the "
            "retention expiry"
        )
    if disp.action == "retain":
        return "kept encrypted in the retention archive until its retention ends"
    return "kept encrypted; the recipient holds its own copy"


def _backup_section(plan: Plan, proof: Proof, erased: set[str]) -> dict[str, Any]:
    """Where the certified dataset's backup is, and what becomes of it."""
    return {
        "manifest": proof.manifest,
        "ciphertext_sha256": proof.ciphertext_sha256,
        "copy": _backup_copy_fate(plan, proof.disposition, erased),
        "deliveries": [
            {"location": d.location, "method": d.method, "sha256": d.sha256}
            for d in proof.deliveries
        ],
    }
