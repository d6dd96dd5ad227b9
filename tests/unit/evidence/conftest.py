"""A sealed dossier of the demo run (built once per module: deleting and sealing takes a
while), and how a key holder re-signs a tampered copy of it."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retirement.evidence.audit import UNLISTED
from retirement.evidence.dossier import build_dossier
from retirement.plan.model import load_plan
from tests.support.demo import CRM, NOW, PLAN, demo_run

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from retirement.crypto.keys import KeyStore


@dataclass(frozen=True)
class Sealed:
    """The dossier of run "r", its key store, and a place for tampered copies."""

    root: Path
    keys: KeyStore
    scratch: Path

    @property
    def published(self) -> Path:
        return self.keys.root / "signing.pub.pem"

    def copy(self, name: str) -> Path:
        target = self.scratch / name
        shutil.copytree(self.root, target)
        return target


def resign(folder: Path, key: Ed25519PrivateKey) -> None:
    """What a holder of ``key`` does after editing ``folder``: every detached signature and
    SHA256SUMS made again, so digests and signatures all agree."""
    for sig in folder.rglob("*.sig"):
        if sig.name != "SHA256SUMS.sig":
            sig.write_bytes(key.sign(sig.with_name(sig.name[:-4]).read_bytes()))
    sums = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in UNLISTED
    )
    (folder / "SHA256SUMS").write_text(sums)
    (folder / "SHA256SUMS.sig").write_bytes(key.sign(sums.encode()))


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    tmp = tmp_path_factory.mktemp("sealed")
    demo = demo_run(tmp)
    demo.approved()
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    index = build_dossier(
        load_plan(PLAN),
        plan_path=Path(PLAN),
        ledger=demo.ledger,
        run_id="r",
        keys=demo.keys,
        output_dir=tmp / "out",
        generated=NOW,
    )
    demo.ledger.close()
    return Sealed(index.parent, demo.keys, tmp_path_factory.mktemp("tampered"))
