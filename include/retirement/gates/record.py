"""A gate's evidence and verdict in the ledger."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.gates.quality import GateResult
    from retirement.ledger.core import Ledger


def record_gate(
    ledger: Ledger,
    run_id: str,
    actor: str,
    folder: Path,
    result: GateResult | None,
    *,
    summary: dict[str, Any] | None = None,
    extra_failures: list[str] | None = None,
) -> None:
    """Keep a gate's GX results as evidence (content-addressed: re-runs add, never
    overwrite) with its Data Docs pages, and record its verdict: failed when GX failed, or
    when ``extra_failures`` are given."""
    if result is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(result.results, ensure_ascii=False, indent=1, default=str).encode()
    results = folder / f"{result.gate}.{_short(data)}.gx.json"
    _keep(ledger, run_id, actor, results, data, "gate_result")
    for name, html in result.docs.items():  # GX Data Docs, one page per validated frame
        page = html.encode()
        docs = folder / f"{result.gate}.{name}.{_short(page)}.html"
        _keep(ledger, run_id, actor, docs, page, "gate_docs")
    verdict = summary if summary is not None else result.summary()
    if extra_failures:
        verdict = {**verdict, "failures": [*verdict.get("failures", []), *extra_failures]}
    passed = result.success and not verdict.get("failures")
    ledger.append(
        "gate_passed" if passed else "gate_failed", actor=actor, run_id=run_id, payload=verdict
    )


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _keep(ledger: Ledger, run_id: str, actor: str, path: Path, data: bytes, kind: str) -> None:
    path.write_bytes(data)
    ledger.add_artifact(
        run_id,
        kind=kind,
        location=str(path),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        actor=actor,
    )
