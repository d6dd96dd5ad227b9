"""Entry points of the pipeline's phases, one function per DAG task.

Each takes explicit inputs (plan path, ledger, run id, actor), does one phase, records it in
the ledger and returns a small JSON-able summary for XCom. Each is safe to re-run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from retirement.inventory.scan import DatasetReport, scan_dataset, with_dispositions
from retirement.phases.pinned import run_plan

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.ledger.core import Ledger
    from retirement.sources.base import Source

log = logging.getLogger(__name__)


def ledger_run_id(dag_id: str, airflow_run_id: str) -> str:
    """The ledger's id for one DAG run: stable across task retries and re-runs."""
    return f"{dag_id}:{airflow_run_id}"


def check_plan(plan_path: str, *, ledger: Ledger, run_id: str, actor: str) -> dict[str, Any]:
    """Validate the plan and open the run in the ledger with the plan's exact text (once,
    however often re-run: a re-run keeps the plan the run was opened with)."""
    from pathlib import Path

    from retirement.plan.loader import load_bytes, read_bytes

    raw = read_bytes(Path(plan_path))  # read once: what is checked is what is kept
    checked = load_bytes(str(plan_path), raw)
    started = ledger.start_run(
        run_id,
        plan_name=checked.name,
        plan_sha256=checked.sha256,
        scenario=checked.scenario,
        actor=actor,
        plan_text=raw.decode("utf-8"),
    )
    plan = run_plan(ledger, run_id, plan_path)
    if plan.sha256 != checked.sha256:
        log.warning(
            "%s changed since run %s was opened (sha256 %s… then, %s… now): this run keeps the "
            "plan it was opened with; trigger a new run to use the new one",
            plan_path,
            run_id,
            plan.sha256[:12],
            checked.sha256[:12],
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
    plan = run_plan(ledger, run_id, plan_path)
    reports = []
    for ref in source.datasets():
        log.info("scanning %s", ref.qualified)
        report = scan_dataset(source, ref, plan.classification, full=full_scan)
        reports.append(_with_key(report, source, plan))
    reports = with_dispositions(reports, plan.disposition_for)
    warnings = unmatched_patterns(plan.source(source_name).include, reports)
    seen = {"source": source_name, "datasets": len(reports), "warnings": warnings}
    before = [
        e.payload
        for e in ledger.events_of(run_id, ("source_inventoried",))
        if e.payload.get("source") == source_name
    ]
    with ledger.batch():
        _record_inventory(reports, ledger=ledger, run_id=run_id, actor=actor)
        if before[-1:] != [seen]:  # a re-run that finds the same adds nothing
            ledger.append("source_inventoried", actor=actor, run_id=run_id, payload=seen)
    return {"source": source_name, "datasets": len(reports), "rows": sum(r.rows for r in reports)}


def unmatched_patterns(include: tuple[str, ...], reports: list[DatasetReport]) -> list[str]:
    """A warning for each include pattern of a source that matched no dataset (a typo in a
    pattern silently leaves data out of the retirement)."""
    import fnmatch

    from retirement.model.ids import DatasetId

    names = [DatasetId.parse(r.qualified).object for r in reports]
    return [
        f"source {reports[0].source if reports else '?'}: include pattern {p!r} matches nothing"
        for p in include
        if p != "*" and not any(fnmatch.fnmatchcase(n, p) for n in names)
    ]


def inventory_warnings(ledger: Ledger, run_id: str) -> list[str]:
    """Every source's warnings of the run's latest inventory."""
    latest: dict[str, list[str]] = {}
    for ev in ledger.events_of(run_id, ("source_inventoried",)):
        latest[str(ev.payload.get("source"))] = list(ev.payload.get("warnings", []))
    return [w for source in sorted(latest) for w in latest[source]]


def _with_key(report: DatasetReport, source: Source, plan: Any) -> DatasetReport:
    """A table's key: the plan's rule's, else the primary key; a key that cannot address
    every row exactly is dropped (the table is then deleted whole, under its fingerprint)
    with the reason, or, when the plan named it, kept as a problem gate_inventory reports."""
    from dataclasses import replace

    from retirement.sources.keys import key_problem
    from retirement.sources.sql import SqlSource

    if report.kind != "table" or not isinstance(source, SqlSource):
        return report
    rule = next((r for r in plan.datasets if r.dataset == report.qualified), None)
    planned = bool(rule and rule.key)
    columns = tuple(rule.key) if rule and rule.key else tuple(source.key_columns(report.name))
    problem = key_problem(source, report.name, columns, planned=planned) if columns else None
    key = {"columns": [] if problem and not planned else list(columns), "planned": planned}
    if problem:
        key["problem"] = problem
    return replace(report, key=key)


def _record_inventory(
    reports: list[DatasetReport], *, ledger: Ledger, run_id: str, actor: str
) -> None:
    """Record each report; a dataset whose deletion has begun keeps its state (a re-run of
    the inventory never steps it back: its backup and deletion stand)."""
    for r in reports:
        now = ledger.dataset_state(run_id, r.qualified)
        if now is not None and now["state"] in ("deleting", "deleted"):
            log.info("%s: its deletion has begun: the inventory does not step it back", r.qualified)
            continue
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
    from retirement.errors import GateFailed
    from retirement.gates import quality
    from retirement.inventory.report import write_reports

    reports = [DatasetReport.from_json(d["detail"]) for d in ledger.dataset_states(run_id)]
    if not reports:
        raise GateFailed(
            "gate_inventory",
            "no dataset was inventoried: check the sources' include/exclude globs and connections",
        )
    plan = run_plan(ledger, run_id, plan_path)
    folder = output_dir / "inventory" / safe_dir(run_id)
    warnings = inventory_warnings(ledger, run_id)
    write_reports(
        reports,
        json_path=folder / "inventory.json",
        html_path=folder / "inventory.html",
        plan=plan.name,
        generated=now,
        warnings=warnings,
    )
    problems = plan_problems(plan, reports)
    try:
        result = quality.gate_inventory(reports, plan.classification, list(plan.dispositions))
    except GateFailed as exc:
        record_gate(ledger, run_id, actor, folder, exc.result, extra_failures=problems)
        raise GateFailed("gate_inventory", "; ".join([*exc.result.failures, *problems])) from exc
    record_gate(ledger, run_id, actor, folder, result, extra_failures=problems)
    if problems:
        raise GateFailed("gate_inventory", "; ".join(problems), result)
    log.info("inventory report: %s", folder / "inventory.html")
    return {
        "gate": "gate_inventory",
        "datasets": [r.qualified for r in reports],
        "report": str(folder / "inventory.html"),
        "warnings": warnings,
    }


def plan_problems(plan: Any, reports: list[DatasetReport]) -> list[str]:
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


def record_gate(
    ledger: Ledger,
    run_id: str,
    actor: str,
    folder: Path,
    result: Any,
    *,
    summary: dict[str, Any] | None = None,
    extra_failures: list[str] | None = None,
) -> None:
    """Keep a gate's GX results as evidence (content-addressed) and record its verdict
    (failed when GX failed, or ``extra_failures`` are given)."""
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
    if extra_failures:
        verdict = {**verdict, "failures": [*verdict.get("failures", []), *extra_failures]}
    passed = result.success and not verdict.get("failures")
    ledger.append(
        "gate_passed" if passed else "gate_failed", actor=actor, run_id=run_id, payload=verdict
    )


def safe_dir(run_id: str) -> str:
    """A run id as one folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def dataset_state(ledger: Ledger, run_id: str, dataset: str) -> dict[str, Any] | None:
    return ledger.dataset_state(run_id, dataset)
