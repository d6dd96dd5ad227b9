"""The plan a run works from: the very bytes plan_check checked, kept in the ledger.

Editing the YAML while a run waits (for an approval, say) changes nothing in that run: every
task reads the plan the run was started with, whose sha256 is in the chain (``run_started``)
and in the approval text; a new run takes the new file.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from retirement.errors import LedgerError
from retirement.plan.model import load_plan

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)
_PINNED: dict[str, Plan] = {}


def run_plan(ledger: Ledger, run_id: str, plan_path: str | Path) -> Plan:
    """The plan of run ``run_id`` as it was checked (``plan_path``: where it was read from,
    used for ledgers written before plans were kept, when its sha256 must still match)."""
    run = ledger.run(run_id)
    if run is None:
        raise LedgerError(f"no run {run_id} in the ledger: plan_check opens it")
    sha = run["plan_sha256"]
    plan = _PINNED.get(sha)
    if plan is not None:
        return plan
    text = ledger.plan_text(sha)
    if text is None:
        plan = load_plan(plan_path)
        if plan.sha256 != sha:
            raise LedgerError(
                f"run {run_id} was checked with plan sha256 {sha[:12]}…, which this ledger does "
                f"not keep, and {plan_path} now has {plan.sha256[:12]}…: start a new run"
            )
        return plan
    from retirement.plan.loader import load_bytes

    raw = text.encode("utf-8")
    if hashlib.sha256(raw).hexdigest() != sha:
        raise LedgerError(f"the plan text kept for run {run_id} does not match its sha256")
    plan = load_bytes(str(plan_path), raw).model_copy(update={"sha256": sha})
    if len(_PINNED) >= 64:
        _PINNED.clear()
    _PINNED[sha] = plan
    return plan
