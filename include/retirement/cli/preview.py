"""`retirement preview PLAN`: what a run of the plan will do, without doing any of it.

The same steps as the DAG run with ``dry_run``: the plan checked, the run opened in the
ledger as a preview, every source inventoried (connections from ``AIRFLOW_CONN_<ID>``), the
preview report written. No key store is opened, no destination is reached, no source is
written to.
"""

from __future__ import annotations

from pathlib import Path  # typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retirement.cli.app import EXIT_FAILED, app, err, out
from retirement.errors import KeyStoreError, RetirementError, TransferError

if TYPE_CHECKING:
    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.destinations.base import Destination
    from retirement.phases.context import RunContext
    from retirement.plan.model import Destination as DestinationSpec
    from retirement.plan.model import Source as SourceSpec
    from retirement.sources.base import Source


class EnvConnectors:
    """Sources and connection details from ``AIRFLOW_CONN_<ID>`` variables; a preview opens
    no destination."""

    def source(self, spec: SourceSpec) -> Source:
        from retirement.connect.info import from_env
        from retirement.connect.s3client import s3_client
        from retirement.sources.build import source_from_connection

        return source_from_connection(spec, from_env(spec.connection), s3_client)

    def destination(self, name: str, spec: DestinationSpec) -> Destination:
        raise TransferError(f"a preview opens no destination (asked for {name})")

    def connection(self, conn_id: str, purpose: str) -> ConnectionInfo:
        from retirement.connect.info import from_env

        return from_env(conn_id)


def _no_key_store() -> KeyStore:
    raise KeyStoreError("a preview opens no key store")


@app.command("preview")
def preview(
    plan_file: Annotated[Path, typer.Argument(help="The retirement plan.", metavar="PLAN")],
    ledger: Annotated[
        str,
        typer.Option(
            "--ledger",
            help="SQLAlchemy URL of the ledger (the preview is recorded there as a preview).",
            envvar="RETIREMENT_LEDGER_URL",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--out", help="Output folder: the report goes to OUT/preview/<run>/."),
    ],
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="The preview's run id (default: a new one).")
    ] = None,
) -> None:
    """Preview a run: the plan checked, every source inventoried, the report of what a run
    would do (backups, deliveries, deletion, retention, notices) written as HTML and JSON.

    Nothing is backed up, delivered or deleted; the ledger records a preview run, which can
    never be approved or sealed. Exits 1 if the plan or a source fails.
    """
    from datetime import UTC, datetime

    from retirement.ledger.core import Ledger
    from retirement.phases.context import Layout, RunContext, ledger_run_id
    from retirement.plan.model import load_plan

    now = datetime.now(UTC)
    try:
        plan = load_plan(plan_file)
        led = Ledger.open(ledger)
    except RetirementError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    ctx = RunContext(
        plan_path=str(plan_file),
        ledger=led,
        run_id=run_id or ledger_run_id(plan.dag_id, f"preview__{now:%Y%m%dT%H%M%S%fZ}"),
        actor="cli:retirement preview",
        now=now,
        keys=_no_key_store,
        layout=Layout(output),
        connectors=EnvConnectors(),
    )
    try:
        summary = _run(ctx)
    finally:
        led.close()
    _print(ctx, summary)


def _run(ctx: RunContext) -> dict[str, Any]:
    """plan_check, inventory per source, the report; a failure marks the preview failed."""
    from retirement.phases.inventory import inventory_source
    from retirement.phases.preview import open_preview, report
    from retirement.phases.run_state import run_failed

    step = {"task": "plan_check", "map_index": -1}
    try:
        for i, name in enumerate(open_preview(ctx)):
            step = {"task": "inventory", "map_index": i}
            inventory_source(ctx, name)
        step = {"task": "preview", "map_index": -1}
        return report(ctx)
    except RetirementError as exc:
        run_failed(ctx, step, exc)
        err.print(f"✗ {step['task']}: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None


def _print(ctx: RunContext, summary: dict[str, Any]) -> None:
    import json

    document = json.loads(Path(summary["json"]).read_text(encoding="utf-8"))
    out.print(f"Preview {ctx.run_id} (nothing was backed up, delivered or deleted)", markup=False)
    out.print(
        f"  {'dataset':<32} {'class':<9} {'disposition':<18} {'rows':>9}  "
        f"{'delivered to':<16} {'kept until':<10} notices",
        markup=False,
    )
    for d in document["datasets"]:
        to = ", ".join(x["destination"] for x in d["deliveries"]) or "-"
        out.print(
            f"  {d['dataset']:<32} {d['class']:<9} {d['disposition']!s:<18} {d['rows']:>9}  "
            f"{to:<16} {d['retention_end'] or '-':<10} {d['notices']}",
            markup=False,
        )
    t = document["totals"]
    out.print(
        f"  total: {t['datasets']} datasets, {t['deleted_rows']:,} rows deleted at the source, "
        f"{t['backups']} backups, {t['deliveries']} deliveries, {t['notices']} notices",
        markup=False,
    )
    for problem in document["problems"]:
        err.print(f"  ! {problem}", markup=False)
    out.print(f"✓ report: {summary['html']}, {summary['json']}", markup=False)
