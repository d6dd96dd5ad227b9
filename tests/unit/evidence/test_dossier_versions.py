"""A sealed dossier is never rewritten: sealing the run again writes version 2 beside it,
whose head.json (and the ledger's dossier_sealed event) names the version it supersedes;
the first stays byte for byte as it was and still audits."""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import TYPE_CHECKING

from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.phases.seal import seal
from tests.support.demo import CRM, demo_run

if TYPE_CHECKING:
    from pathlib import Path


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _audit(folder: Path, key: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", str(folder), "--public-key", str(key)])
    return result.exit_code, result.output


def test_resealing_writes_a_new_version_and_keeps_the_sealed_one(tmp_path: Path) -> None:
    demo = demo_run(tmp_path)
    demo.approved()
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    first = seal(demo.ctx()).parent
    before = _files(first)
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    second = seal(demo.ctx()).parent
    assert second == first.parent / f"{first.name}.v2"
    assert _files(first) == before  # not one byte of version 1 changed, nothing added
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == mtimes
    head = json.loads((second / "head.json").read_text())
    assert head["dossier_version"] == 2
    assert head["supersedes"] == {
        "dossier": first.name,
        "version": 1,
        "sha256sums": hashlib.sha256((first / "SHA256SUMS").read_bytes()).hexdigest(),
        "chain_head": json.loads((first / "head.json").read_text())["chain_head"],
    }
    sealed = demo.ledger.events_of("r", ("dossier_sealed",))
    assert [e.payload.get("version", 1) for e in sealed] == [1, 2]
    assert sealed[1].payload["supersedes"]["dossier"] == first.name
    assert "dossier_sealed" in (second / "ledger.jsonl").read_text()  # v1's seal is chained
    key = demo.keys.root / "signing.pub.pem"
    for folder in (first, second):
        code, output = _audit(folder, key)
        assert code == 0, output
        shell = subprocess.run(
            ["sh", "verify.sh", "--public-key", str(key)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr
    third = seal(demo.ctx()).parent
    assert third.name == f"{first.name}.v3"
    assert json.loads((third / "head.json").read_text())["supersedes"]["version"] == 2
    assert _files(first) == before


def test_a_dossier_left_unsealed_by_a_failed_seal_is_written_again(tmp_path: Path) -> None:
    demo = demo_run(tmp_path)
    demo.approved()
    half = tmp_path / "out" / "dossier" / "r"
    half.mkdir(parents=True)
    (half / "index.html").write_text("a seal that died before signing")
    root = seal(demo.ctx()).parent
    assert root == half
    assert "a seal that died" not in (root / "index.html").read_text()
    assert not (half.parent / "r.v2").exists()
