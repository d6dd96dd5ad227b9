"""seal: the closure dossier of the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retirement.phases.context import RunContext


def seal(ctx: RunContext) -> Path:
    """The closure dossier of the run: evidence, signed digests and the chain head."""
    from retirement.evidence.dossier import build_dossier

    return build_dossier(
        ctx.plan,
        plan_path=Path(ctx.plan_path),
        ledger=ctx.ledger,
        run_id=ctx.run_id,
        keys=ctx.key_store,
        output_dir=ctx.layout.root,
        generated=ctx.stamp,
    )


def seal_path(ctx: RunContext) -> str:
    """seal as the DAG needs it: where the dossier's index is."""
    return str(seal(ctx))
