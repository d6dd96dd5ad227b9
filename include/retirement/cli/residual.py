"""`retirement attest-residual`: an operator attests that a residual copy (one the pipeline
cannot reach: a WAL/PITR archive, a replica, a source backup or snapshot, another system's
copy) was dealt with; recorded in the ledger with who and when. Registered on
``retirement.cli.app`` when ``retirement.cli.root`` imports this module."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import Annotated

import typer

from retirement.cli.app import EXIT_FAILED, LedgerOpt, app, err, out
from retirement.errors import LedgerError, PlanError, RetirementError


@app.command("attest-residual")
def attest_residual_cmd(
    plan: Annotated[Path, typer.Argument(help="The plan file the run was started with.")],
    run: Annotated[str, typer.Argument(help="The run's id in the ledger.")],
    copy: Annotated[str, typer.Argument(help="The residual copy's name in the plan.")],
    by: Annotated[str, typer.Option("--by", help="Who attests it (recorded in the ledger).")],
    ledger: LedgerOpt,
    note: Annotated[
        str, typer.Option("--note", help="What was done (e.g. the ticket closing it).")
    ] = "",
) -> None:
    """Attest that residual copy COPY of run RUN was dealt with (purged, expired, or
    confirmed absent by its responsible); recorded in the ledger with who and when.

    Exits 1 when the plan does not list the copy, the run is unknown, or it was attested
    already (an attestation is never replaced)."""
    from retirement.evidence.residual import attest_residual
    from retirement.ledger.core import Ledger
    from retirement.phases.pinned import run_plan

    try:
        led = Ledger.open(ledger, create=False)
        if led.run(run) is None:
            raise LedgerError(f"no run {run} in the ledger")
        pinned = run_plan(led, run, plan)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        done = attest_residual(led, pinned, run, copy, by=by, at=at, note=note)
    except (PlanError, RetirementError) as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(
        f"✓ residual copy {copy} ({done['what']}) of run {run} attested by {by} at {at}",
        markup=False,
    )
