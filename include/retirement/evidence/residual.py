"""Residual copies: the copies of the data the pipeline cannot reach (PostgreSQL WAL and PITR
archives, replicas, the source's own backups and snapshots, copies in other systems).

The plan lists them (``residual_copies``), each with who is responsible and by when; the
approval text shows them; an operator attests each one done (``retirement attest-residual``),
recorded in the ledger with who and when; certificates and the dossier list them with their
state, ``attested`` or ``open``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement.errors import AttestationRefused

if TYPE_CHECKING:
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan

ATTESTED = "residual_copy_attested"

KINDS = {
    "wal_pitr": "WAL / point-in-time-recovery archive",
    "replica": "replica",
    "source_backup": "the source's own backup",
    "snapshot": "snapshot",
    "other_system": "copy in another system",
}


def residual_states(plan: Plan, ledger: Ledger, run_id: str) -> list[dict[str, Any]]:
    """Each residual copy of the plan, with its state in run ``run_id`` (the attestation's
    who, when and note once attested)."""
    attested = {
        str(ev.payload.get("copy")): ev.payload for ev in ledger.events_of(run_id, (ATTESTED,))
    }
    out = []
    for name, copy in plan.residual_copies.items():
        done = attested.get(name)
        out.append(
            {
                "copy": name,
                "what": copy.what,
                "kind": copy.kind,
                "kind_label": KINDS[copy.kind],
                "responsible": copy.responsible,
                "due": copy.due.isoformat(),
                "state": "attested" if done else "open",
                "attested_by": done.get("attested_by") if done else None,
                "attested_at": done.get("attested_at") if done else None,
                "note": done.get("note", "") if done else "",
            }
        )
    return out


def attest_residual(
    ledger: Ledger, plan: Plan, run_id: str, copy: str, *, by: str, at: str, note: str = ""
) -> dict[str, Any]:
    """Record in the ledger that ``by`` dealt with residual copy ``copy`` of run ``run_id``
    (at ``at``); refused for a copy the plan does not list, a run the ledger does not know,
    or a copy attested already."""
    if not by.strip():
        raise AttestationRefused("say who attests it (--by NAME)")
    if copy not in plan.residual_copies:
        listed = ", ".join(sorted(plan.residual_copies)) or "none"
        raise AttestationRefused(
            f"plan {plan.name} lists no residual copy {copy!r} (residual_copies: {listed})"
        )
    if ledger.run(run_id) is None:
        raise AttestationRefused(f"no run {run_id} in the ledger")
    for state in residual_states(plan, ledger, run_id):
        if state["copy"] == copy and state["state"] == "attested":
            raise AttestationRefused(
                f"residual copy {copy} of run {run_id} was attested already by "
                f"{state['attested_by']} at {state['attested_at']}"
            )
    spec = plan.residual_copies[copy]
    payload = {
        "copy": copy,
        "what": spec.what,
        "kind": spec.kind,
        "responsible": spec.responsible,
        "due": spec.due.isoformat(),
        "attested_by": by,
        "attested_at": at,
        "note": note,
    }
    ledger.append(ATTESTED, actor=by, run_id=run_id, payload=payload)
    return payload


def residual_markdown(states: list[dict[str, Any]], shown: Any) -> str:
    """The approval text's section on residual copies (empty when the plan lists none)."""
    if not states:
        return ""
    lines = [
        "",
        "",
        "Copies this pipeline cannot reach (residual_copies); each must be dealt with by "
        "its responsible and attested (`retirement attest-residual`):",
        "",
        "| copy | what | kind | responsible | due | state |",
        "|---|---|---|---|---|---|",
    ]
    for s in states:
        lines.append(
            f"| {shown(s['copy'])} | {shown(s['what'])} | {shown(s['kind_label'])} | "
            f"{shown(s['responsible'])} | {s['due']} | {s['state']} |"
        )
    return "\n".join(lines)
