"""gate_inventory: the inventory checked with great-expectations and against the plan."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.errors import GateFailed
from retirement.gates.record import record_gate
from retirement.inventory.scan import DatasetReport
from retirement.phases.anchor import anchor_gate
from retirement.phases.inventory import inventory_warnings
from retirement.phases.preview import refuse_preview

if TYPE_CHECKING:
    from retirement.phases.context import RunContext
    from retirement.plan.model import Plan

log = logging.getLogger(__name__)


def gate_inventory(ctx: RunContext) -> dict[str, Any]:
    """Validate the whole inventory with great-expectations; write the reports; record it."""
    refuse_preview(ctx, "gate_inventory")
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
        generated=ctx.clock_stamp(),
        warnings=warnings,
    )
    problems = plan_problems(plan, reports)
    from retirement.phases.foreign_keys import plan_problems as foreign_key_problems

    problems += foreign_key_problems(ctx, [r.qualified for r in reports])
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
    anchor_gate(ctx, "gate_inventory")  # before anything is backed up or deleted
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
    out += [
        f"customer_keys.{dataset}: no dataset of the inventory: fix the name, or its "
        "certificate counts no individuals"
        for dataset in plan.customer_keys
        if dataset not in names
    ]
    out += unassessed_transfers(plan, reports)
    for r in reports:
        if r.key and r.key.get("planned") and r.key.get("problem"):
            out.append(
                f"{r.qualified}: the plan's key ({', '.join(r.key['columns'])}) cannot be used: "
                f"{r.key['problem']}"
            )
    return out


def unassessed_transfers(plan: Plan, reports: list[DatasetReport]) -> list[str]:
    """Sensitive datasets a transfer would send without its impact assessment (PIPL Art.
    55-56): plan_check refuses it for the classes ``by_class`` sends; a dataset pinned to a
    transfer by a ``datasets`` rule is known to be sensitive only now."""
    from retirement.plan.assessments import IMPACT_WHY, sensitive_classes

    sensitive = set(sensitive_classes(plan.classification.classes))
    out = []
    for r in reports:
        disp = plan.dispositions.get(r.disposition or "")
        if (
            disp
            and disp.action == "transfer"
            and not disp.impact_assessment
            and r.data_class in sensitive
        ):
            out.append(
                f"{r.qualified} (class {r.data_class}) goes to transfer {r.disposition}: "
                f"dispositions.{r.disposition}.impact_assessment is missing: {IMPACT_WHY}"
            )
    return out


def datasets_in_batches(ctx: RunContext) -> list[list[str]]:
    """gate_inventory as the DAG needs it: the datasets, in batches for the mapped backup."""
    from retirement.phases.batching import batched

    return batched(ctx, gate_inventory(ctx)["datasets"])
