"""The `retirement` command's Typer apps and consoles, shared by its command modules
(``cli.root``: plans, ledger, scan; ``cli.archive``: backups, certificates, dossiers)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from retirement import __version__

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

LedgerOpt = Annotated[
    str,
    typer.Option(
        "--ledger",
        help="SQLAlchemy URL of the ledger, e.g. sqlite:///demo-output/ledger.sqlite",
        envvar="RETIREMENT_LEDGER_URL",
    ),
]

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
