"""The `retirement` command for operators, recipients and auditors.

Exit codes: 0 all good, 1 a check failed, 2 the command was used wrongly.
"""

from __future__ import annotations

from pathlib import Path  # typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retirement.cli.app import EXIT_FAILED, LedgerOpt, app, err, ledger_app, out, plan_app
from retirement.errors import ChainBroken, LedgerError, PlanError

if TYPE_CHECKING:  # typed lazily: the command starts without importing the sources
    from retirement.inventory.scan import DatasetReport
    from retirement.plan.policy import ClassificationPolicy
    from retirement.sources.base import Source


@plan_app.command("check")
def plan_check(
    files: Annotated[list[Path], typer.Argument(help="Plan files to check.", metavar="FILE...")],
) -> None:
    """Validate plan files: every problem is printed with file, line, field and the fix.

    Exits 0 when every plan is valid, 1 when any has a problem.
    """
    from retirement.plan.model import load_plan

    failed = 0
    for path in files:
        try:
            plan = load_plan(path)
        except PlanError as exc:
            failed += 1
            err.print(f"[red]✗[/red] {path}: {len(exc.issues)} problem(s)")
            for issue in exc.issues:
                err.print(f"  {issue}", markup=False)
            continue
        out.print(
            f"[green]✓[/green] {path}: plan {plan.name!r} ({plan.scenario}), "
            f"{len(plan.sources)} source(s), {len(plan.dispositions)} disposition(s), "
            f"DAG {plan.dag_id}"
        )
    if failed:
        raise typer.Exit(EXIT_FAILED)


@ledger_app.command("verify")
def ledger_verify(
    ledger: LedgerOpt,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="A chain head published earlier (e.g. chain_head in a signed dossier's "
            "head.json): the chain must pass through it; events appended after it (the "
            "seal's own event, later runs) are counted.",
        ),
    ] = None,
) -> None:
    """Walk the audit chain and check every event's hash and link.

    Exits 1 and names the first event that was edited, deleted, inserted or reordered.
    """
    from retirement.ledger.core import Ledger

    try:
        led = Ledger.open(ledger, create=False)
    except LedgerError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    try:
        report = led.verify(expect_head=expect_head)
    except ChainBroken as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        led.close()
    out.print(f"[green]✓[/green] ledger verified: {report.events} events, chain head {report.head}")
    if report.head_at is not None:
        after = report.events - report.head_at
        out.print(
            f"  the expected head {expect_head} is event {report.head_at}"
            + (f"; {after} event(s) were appended after it" if after else ", the last one"),
            markup=False,
        )


def _open_target(target: str) -> Source:
    from retirement.sources.files import FileSource
    from retirement.sources.sql import SqlSource

    if "://" in target:
        import sqlalchemy as sa

        from retirement.errors import SourceError

        name = target.split("://", 1)[0].split("+", 1)[0]
        try:
            return SqlSource(name if name != "postgresql" else "postgres", target)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise SourceError(
                f"{target.split('@')[-1]}: not a database URL this tool reads "
                f"(postgresql://, mysql://, sqlite:///): {exc}"
            ) from exc
    return FileSource(Path(target).name or "files", target)


def _scan(source: Source, policy: ClassificationPolicy, *, full: bool) -> list[DatasetReport]:
    """Scan every dataset of ``source`` with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from retirement.inventory.scan import scan_dataset

    refs = source.datasets()
    reports = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("datasets", total=len(refs), rows=0)
        for ref in refs:
            bar.update(task, description=f"scanning {ref.qualified}")
            reports.append(
                scan_dataset(
                    source,
                    ref,
                    policy,
                    full=full,
                    on_rows=lambda n: bar.update(task, rows=bar.tasks[0].fields["rows"] + n),
                )
            )
            bar.advance(task)
        bar.update(task, description="scanned")
    return reports


@app.command("scan")
def scan(
    target: Annotated[
        str,
        typer.Argument(
            help="A database URL (postgresql://, mysql://, sqlite:///) or a directory.",
            metavar="TARGET",
        ),
    ],
    json_out: Annotated[Path, typer.Option("--json", help="Write the inventory JSON here.")],
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report.")
    ] = None,
    sample_only: Annotated[
        bool,
        typer.Option(
            "--sample-only", help="Scan only the first rows of each dataset (fast, less certain)."
        ),
    ] = False,
) -> None:
    """Scan one database or folder for personal data, without a plan (default policy)."""
    from datetime import UTC, datetime

    from retirement.errors import SourceError
    from retirement.inventory.report import write_reports
    from retirement.plan.policy import ClassificationPolicy

    try:
        with _open_target(target) as source:
            reports = _scan(source, ClassificationPolicy.default(), full=not sample_only)
    except SourceError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    write_reports(
        reports,
        json_path=json_out,
        html_path=html_out,
        plan=None,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _summary(reports, json_out, html_out)


@app.command("inventory")
def inventory(
    plan_file: Annotated[Path, typer.Argument(help="The retirement plan.", metavar="PLAN")],
    json_out: Annotated[Path, typer.Option("--json", help="Write the inventory JSON here.")],
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report.")
    ] = None,
    sample_only: Annotated[
        bool, typer.Option("--sample-only", help="Scan only the first rows of each dataset.")
    ] = False,
) -> None:
    """Scan every source of a plan (connections from AIRFLOW_CONN_<ID> variables).

    Nothing is written to the ledger: this is the dry run of the DAG's inventory phase.
    """
    from datetime import UTC, datetime

    from retirement.connect.info import from_env
    from retirement.connect.s3client import s3_client
    from retirement.errors import SourceError
    from retirement.inventory.report import write_reports
    from retirement.inventory.scan import with_dispositions
    from retirement.plan.model import load_plan
    from retirement.sources.build import source_from_connection

    try:
        plan = load_plan(plan_file)
    except PlanError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    reports = []
    try:
        for spec in plan.sources:
            with source_from_connection(spec, from_env(spec.connection), s3_client) as source:
                reports += _scan(source, plan.classification, full=not sample_only)
    except SourceError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    reports = with_dispositions(reports, plan.disposition_for)
    write_reports(
        reports,
        json_path=json_out,
        html_path=html_out,
        plan=plan.name,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _summary(reports, json_out, html_out)


def _summary(reports: list[Any], json_out: Path, html_out: Path | None) -> None:
    by_class: dict[str, int] = {}
    for r in reports:
        by_class[r.data_class] = by_class.get(r.data_class, 0) + 1
    classes = ", ".join(f"{n} {c}" for c, n in sorted(by_class.items()))
    where = f"{json_out}" + (f", {html_out}" if html_out else "")
    out.print(f"✓ {len(reports)} dataset(s): {classes} → {where}", markup=False)


# The archive commands (verify-backup, restore, verify-certificate, audit) live in cli.archive,
# registered after these so that --help lists them in the same order as always.
from retirement.cli import archive, preview, residual  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
