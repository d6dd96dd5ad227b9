"""notify_customers: PIPL Art. 22 notices for transfers, before anything is deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retirement.evidence.notices import notify_customers as _notify
from retirement.phases.preview import refuse_preview

if TYPE_CHECKING:
    from retirement.phases.context import RunContext


def notify_customers(ctx: RunContext) -> dict[str, Any]:
    """The encrypted mail-merge CSV per notified disposition; sent over the plan's SMTP
    connection where it names one (each send recorded; a re-run sends nothing twice)."""
    refuse_preview(ctx, "notify_customers")
    plan = ctx.plan
    smtp = None
    if plan.notices is not None and plan.notices.smtp_connection:
        smtp = ctx.connectors.connection(plan.notices.smtp_connection, "customer notices (smtp)")
    return _notify(
        plan,
        ledger=ctx.ledger,
        run_id=ctx.run_id,
        actor=ctx.actor,
        keys=ctx.key_store,
        source_for=ctx.source,
        smtp=smtp,
        output_dir=ctx.layout.root,
        date=ctx.today.isoformat(),
    )
