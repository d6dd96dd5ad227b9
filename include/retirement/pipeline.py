"""Entry points of the pipeline's phases, one function per DAG task.

Each takes explicit inputs (plan path, ledger, run id, actor), does one phase, records it in
the ledger and returns a small JSON-able summary for XCom. Each is safe to re-run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.inventory import DatasetReport, scan_dataset, with_dispositions
from retirement.plan import load_plan

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.ledger import Ledger
    from retirement.sources.base import Source

log = logging.getLogger(__name__)


def ledger_run_id(dag_id: str, airflow_run_id: str) -> str:
    """The ledger's id for one DAG run: stable across task retries and re-runs."""
    return f"{dag_id}:{airflow_run_id}"


def check_plan(plan_path: str, *, ledger: Ledger, run_id: str, actor: str) -> dict[str, Any]:
    """Validate the plan and open the run in the ledger (once, however often re-run)."""
    plan = load_plan(plan_path)
    started = ledger.start_run(
        run_id, plan_name=plan.name, plan_sha256=plan.sha256, scenario=plan.scenario, actor=actor
    )
    log.info(
        "plan %s (sha256 %s) %s run %s",
        plan.name,
        plan.sha256[:12],
        "opened" if started else "already opened",
        run_id,
    )
    return {
        "run_id": run_id,
        "plan": plan.name,
        "plan_sha256": plan.sha256,
        "sources": [s.name for s in plan.sources],
    }


def inventory_source(
    plan_path: str,
    source_name: str,
    *,
    source: Source,
    ledger: Ledger,
    run_id: str,
    actor: str,
    full_scan: bool = True,
) -> dict[str, Any]:
    """Discover, scan and classify every dataset of one source; record each in the ledger."""
    plan = load_plan(plan_path)
    reports = []
    for ref in source.datasets():
        log.info("scanning %s", ref.qualified)
        reports.append(scan_dataset(source, ref, plan.classification, full=full_scan))
    reports = with_dispositions(reports, plan.disposition_for)
    with ledger.batch():
        _record_inventory(reports, ledger=ledger, run_id=run_id, actor=actor)
    return {"source": source_name, "datasets": len(reports), "rows": sum(r.rows for r in reports)}


def _record_inventory(
    reports: list[DatasetReport], *, ledger: Ledger, run_id: str, actor: str
) -> None:
    for r in reports:
        ledger.set_dataset_state(
            run_id,
            r.qualified,
            "inventoried",
            actor=actor,
            payload=r.to_json(),
            rows=r.rows,
            bytes=r.bytes,
            data_class=r.data_class,
            disposition=r.disposition,
        )
        log.info(
            "%s: %s rows, class %s, disposition %s",
            r.qualified,
            r.rows,
            r.data_class,
            r.disposition,
        )


def gate_inventory(
    plan_path: str, *, ledger: Ledger, run_id: str, actor: str, output_dir: Path, now: str
) -> dict[str, Any]:
    """Validate the whole inventory with great-expectations; write the reports; record it."""
    from retirement import quality
    from retirement.errors import GateFailed
    from retirement.inventory_report import write_reports

    plan = load_plan(plan_path)
    reports = [DatasetReport.from_json(d["detail"]) for d in ledger.dataset_states(run_id)]
    if not reports:
        raise GateFailed(
            "gate_inventory",
            "no dataset was inventoried: check the sources' include/exclude globs and connections",
        )
    folder = output_dir / "inventory" / safe_dir(run_id)
    write_reports(
        reports,
        json_path=folder / "inventory.json",
        html_path=folder / "inventory.html",
        plan=plan.name,
        generated=now,
    )
    try:
        result = quality.gate_inventory(reports, plan.classification, list(plan.dispositions))
    except GateFailed as exc:
        record_gate(ledger, run_id, actor, folder, exc.result)
        raise
    record_gate(ledger, run_id, actor, folder, result)
    log.info("inventory report: %s", folder / "inventory.html")
    return {
        "gate": "gate_inventory",
        "datasets": [r.qualified for r in reports],
        "report": str(folder / "inventory.html"),
    }


def record_gate(
    ledger: Ledger,
    run_id: str,
    actor: str,
    folder: Path,
    result: Any,
    *,
    summary: dict[str, Any] | None = None,
) -> None:
    """Keep a gate's GX results as evidence (content-addressed) and record its verdict."""
    import hashlib
    import json

    if result is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(result.results, ensure_ascii=False, indent=1, default=str).encode()
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{result.gate}.{digest[:12]}.gx.json"  # re-runs add, never overwrite
    path.write_bytes(data)
    ledger.add_artifact(
        run_id, kind="gate_result", location=str(path), size=len(data), sha256=digest, actor=actor
    )
    for name, html in result.docs.items():
        page = html.encode()
        page_digest = hashlib.sha256(page).hexdigest()
        docs = folder / f"{result.gate}.{name}.{page_digest[:12]}.html"  # GX Data Docs
        docs.write_bytes(page)
        ledger.add_artifact(
            run_id,
            kind="gate_docs",
            location=str(docs),
            size=len(page),
            sha256=page_digest,
            actor=actor,
        )
    verdict = summary if summary is not None else result.summary()
    passed = result.success and not verdict.get("failures")
    ledger.append(
        "gate_passed" if passed else "gate_failed", actor=actor, run_id=run_id, payload=verdict
    )


def safe_dir(run_id: str) -> str:
    """A run id as one folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def dataset_state(ledger: Ledger, run_id: str, dataset: str) -> dict[str, Any] | None:
    return ledger.dataset_state(run_id, dataset)
