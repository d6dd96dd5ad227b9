"""Versions of a run's dossier. A sealed dossier (one with ``SHA256SUMS.sig``) may already
be in an auditor's hands, so it is never changed: sealing the run again writes version 2 as
``dossier/<run>.v2/`` beside ``dossier/<run>/`` (version 1), then ``.v3`` and so on; the new
version's head.json names the one it supersedes (its folder, version, SHA256SUMS digest and
chain head), as does the ledger's ``dossier_sealed`` event. A folder left unsealed by a seal
that failed half-way was never handed to anyone and is written again."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def versions(base: Path, name: str) -> list[tuple[int, Path]]:
    """The run's dossier folders under ``base``, oldest first."""
    found = [(1, base / name)] if (base / name).is_dir() else []
    pattern = re.compile(re.escape(name) + r"\.v([0-9]+)")
    if base.is_dir():
        for path in base.iterdir():
            match = pattern.fullmatch(path.name)
            if match and path.is_dir() and int(match.group(1)) > 1:
                found.append((int(match.group(1)), path))
    return sorted(found)


def latest_version(base: Path, name: str) -> Path:
    """The folder of the run's latest dossier (``base/name`` when there is none yet)."""
    found = versions(base, name)
    return found[-1][1] if found else base / name


def is_sealed(folder: Path) -> bool:
    return (folder / "SHA256SUMS.sig").is_file()


def new_version(base: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The (empty, created) folder of the dossier to write, and its lineage: ``version``
    (its number) and ``supersedes`` (what it says of the sealed version before it; None
    for version 1)."""
    existing = versions(base, name)
    latest = existing[-1] if existing else None
    if latest is not None and not is_sealed(latest[1]):
        shutil.rmtree(latest[1])  # a seal that failed half-way: nobody holds it
        existing.pop()
    sealed = existing[-1] if existing else None
    if sealed is None:
        version, root, supersedes = 1, base / name, None
    else:
        version = sealed[0] + 1
        root, supersedes = base / f"{name}.v{version}", superseded(sealed[1], sealed[0])
    root.mkdir(parents=True)
    return root, {"version": version, "supersedes": supersedes}


def superseded(folder: Path, version: int) -> dict[str, Any]:
    """What a new version says of the sealed one it supersedes."""
    head = json.loads((folder / "head.json").read_text())
    return {
        "dossier": folder.name,
        "version": version,
        "sha256sums": hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest(),
        "chain_head": head.get("chain_head"),
    }
