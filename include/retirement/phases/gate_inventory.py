"""gate_inventory: the inventory checked with great-expectations and against the plan."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.errors import GateFailed
from retirement.gates.record import record_gate
from retirement.inventory.scan import DatasetReport
from retirement.phases.inventory import inventory_warnings

if TYPE_CHECKING:
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)


def gate_inventory(ctx: RunContext) -> dict[str, Any]:
    """Validate the whole inventory with great-expectations; write the reports; record it."""
    from retirement.gates import quality
    from retirement.inventory.report import write_reports

    ledger, run_id = ctx.ledger, ctx.run_id
    reports = [DatasetReport.from_json(d.inventory) for d in ledger.dataset_states(run_id)]
    if not reports:
        raise GateFailed(
            "gate_inventory",
            "no dataset was inventoried: check the sources' include/exclude globs and connections",
        )
    plan = ctx.plan
    folder = ctx.layout.inventory(run_id)
    warnings = inventory_warnings(ledger, run_id)
    write_reports(
        reports,
        json_path=folder / "inventory.json",
        html_path=folder / "inventory.html",
        plan=plan.name,
        generated=ctx.stamp,
        warnings=warnings,
    )
    problems = plan_problems(plan, reports)
    try:
        result = quality.gate_inventory(reports, plan.classification, list(plan.dispositions))
    except GateFailed as exc:
        found = exc.result if isinstance(exc.result, quality.GateResult) else None
        record_gate(ledger, run_id, ctx.actor, folder, found, extra_failures=problems)
        failures = found.failures if found is not None else (str(exc),)
        raise GateFailed("gate_inventory", "; ".join([*failures, *problems])) from exc
    record_gate(ledger, run_id, ctx.actor, folder, result, extra_failures=problems)
    if problems:
        raise GateFailed("gate_inventory", "; ".join(problems), result)
    log.info("inventory report: %s", folder / "inventory.html")
    return {
        "gate": "gate_inventory",
        "datasets": [r.qualified for r in reports],
        "report": str(folder / "inventory.html"),
        "warnings": warnings,
    }


def plan_problems(plan: Plan, reports: list[DatasetReport]) -> list[str]:
    """What the plan says that the inventory contradicts: a rule naming a dataset that does
    not exist (a typo that would send data to the wrong disposition), a key the plan gives
    that cannot address every row."""
    import difflib

    names = [r.qualified for r in reports]
    out = []
    for i, rule in enumerate(plan.datasets):
        if rule.dataset not in names:
            near = difflib.get_close_matches(rule.dataset, names, n=1)
            out.append(
                f"datasets.{i}.dataset: {rule.dataset} is no dataset of the inventory"
                + (f" (did you mean {near[0]}?)" if near else "")
                + ": fix the rule, or it silently does not apply"
            )
    for r in reports:
        if r.key and r.key.get("planned") and r.key.get("problem"):
            out.append(
                f"{r.qualified}: the plan's key ({', '.join(r.key['columns'])}) cannot be used: "
                f"{r.key['problem']}"
            )
    return out


def datasets_in_batches(ctx: RunContext) -> list[list[str]]:
    """gate_inventory as the DAG needs it: the datasets, in batches for the mapped backup."""
    from retirement.phases.batching import batched

    return batched(ctx, gate_inventory(ctx)["datasets"])
