"""seal: the closure dossier of the run."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retirement.phases.context import RunContext

log = logging.getLogger(__name__)


def seal(ctx: RunContext) -> Path:
    """The closure dossier of the run: evidence, signed digests and the chain head (a new
    version beside a dossier sealed before, evidence.versions), time-stamped when the plan
    names a time-stamping authority and sent to the plan's witnesses; the run is then
    sealed."""
    from retirement.evidence.dossier import build_dossier
    from retirement.model.state import RunState
    from retirement.phases.anchor import authority, time_stamp
    from retirement.phases.preview import refuse_preview
    from retirement.phases.witness import send_witnesses

    refuse_preview(ctx, "seal")
    tsa = authority(ctx)  # asked first: an unknown connection fails before anything is written
    index = build_dossier(
        ctx.plan,
        plan_path=Path(ctx.plan_path),
        ledger=ctx.ledger,
        run_id=ctx.run_id,
        keys=ctx.key_store,
        output_dir=ctx.layout.root,
        generated=ctx.clock_stamp(),
        stamper=None if tsa is None else partial(time_stamp, tsa),
    )
    send_witnesses(ctx, index.parent)
    ctx.ledger.set_run_state(
        ctx.run_id, RunState.SEALED, actor=ctx.actor, payload={"dossier": str(index.parent)}
    )
    signer = json.loads((index.parent / "head.json").read_text())["signing_key"]
    log.info(
        "dossier %s signed by key %s: audit it with retirement audit %s --key-fingerprint %s",
        index.parent,
        signer,
        index.parent,
        signer,
    )
    return index


def seal_path(ctx: RunContext) -> str:
    """seal as the DAG needs it: where the dossier's index is."""
    return str(seal(ctx))


def seal_summary(ctx: RunContext) -> dict[str, str]:
    """seal as the DAG needs it: where the dossier is, and the fingerprint (SHA-256 of the
    DER public key) of the key that signed it, for the notice that the run is sealed."""
    index = seal(ctx)
    return {
        "dossier": str(index.parent),
        "index": str(index),
        "signing_key_sha256": signing_key_sha256(ctx.key_store.public_signing_key_pem()),
    }


def signing_key_sha256(pem: bytes) -> str:
    import hashlib

    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    der = load_pem_public_key(pem).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
