"""The `retirement` command for operators, recipients and auditors.

Exit codes: 0 all good, 1 a check failed, 2 the command was used wrongly.
"""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import Annotated

import typer
from rich.console import Console

from retirement import __version__
from retirement.errors import ChainBroken, LedgerError, PlanError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="retirement",
    help="Retire a company's customer data provably: check plans, verify the audit ledger.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
plan_app = typer.Typer(help="Work with retirement plans (YAML).", no_args_is_help=True)
ledger_app = typer.Typer(help="Inspect and verify the ledger's audit chain.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(ledger_app, name="ledger")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"retirement {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Retire a company's customer data provably."""


@plan_app.command("check")
def plan_check(
    files: Annotated[list[Path], typer.Argument(help="Plan files to check.", metavar="FILE...")],
) -> None:
    """Validate plan files: every problem is printed with file, line, field and the fix.

    Exits 0 when every plan is valid, 1 when any has a problem.
    """
    from retirement.plan import load_plan

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
    ledger: Annotated[
        str,
        typer.Option(
            "--ledger",
            help="SQLAlchemy URL of the ledger, e.g. sqlite:///demo-output/ledger.sqlite",
            envvar="RETIREMENT_LEDGER_URL",
        ),
    ],
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="A chain head published earlier (e.g. in a signed dossier): "
            "the chain must end exactly there.",
        ),
    ] = None,
) -> None:
    """Walk the audit chain and check every event's hash and link.

    Exits 1 and names the first event that was edited, deleted, inserted or reordered.
    """
    from retirement.ledger import Ledger

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
