"""seal: the closure dossier of the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retirement.phases.context import RunContext


def seal(ctx: RunContext) -> Path:
    """The closure dossier of the run: evidence, signed digests and the chain head; the run
    is then sealed."""
    from retirement.evidence.dossier import build_dossier
    from retirement.model.state import RunState

    index = build_dossier(
        ctx.plan,
        plan_path=Path(ctx.plan_path),
        ledger=ctx.ledger,
        run_id=ctx.run_id,
        keys=ctx.key_store,
        output_dir=ctx.layout.root,
        generated=ctx.stamp,
    )
    ctx.ledger.set_run_state(
        ctx.run_id, RunState.SEALED, actor=ctx.actor, payload={"dossier": str(index.parent)}
    )
    return index


def seal_path(ctx: RunContext) -> str:
    """seal as the DAG needs it: where the dossier's index is."""
    return str(seal(ctx))
