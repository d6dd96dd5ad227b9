"""The external time anchor (RFC 3161) against a local time-stamping authority made with
``openssl ts -reply``: each gate and the seal time-stamp the chain head (and the seal
SHA256SUMS); the tokens verify with ``openssl ts -verify`` and the authority's CA; a chain
rewritten and re-signed with the genuine key no longer matches them; an authority that
cannot be reached stops the run at its first gate, before anything is deleted."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.connect.info import ConnectionInfo
from retirement.errors import TimestampError
from retirement.ledger.encoding import canonical, line_digest, link
from retirement.phases.seal import seal
from tests.servers.sshd import free_port
from tests.servers.tsa import run_tsa
from tests.support.anchored import demo_plan_with
from tests.support.demo import CRM, demo_run
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from retirement.crypto.keys import KeyStore
    from tests.servers.tsa import LocalTsa

EVIDENCE = "evidence:\n  timestamp_authority: tsa\n"
GATES = ("gate_inventory", "gate_backup", "gate_transfer", "gate_deletion")


@dataclass(frozen=True)
class Anchored:
    root: Path
    keys: KeyStore
    tsa: LocalTsa
    scratch: Path


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    server = run_tsa(tmp_path_factory.mktemp("tsa"))
    yield next(server)
    server.close()


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory, tsa: LocalTsa) -> Anchored:
    tmp = tmp_path_factory.mktemp("anchored")
    plan = demo_plan_with(tmp / "plan", EVIDENCE)
    demo = demo_run(tmp, plan=plan, connections={"tsa": tsa.connection})
    demo.approved()
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    index = seal(demo.ctx())
    demo.ledger.close()
    return Anchored(index.parent, demo.keys, tsa, tmp_path_factory.mktemp("rewritten"))


def _audit(folder: Path, *more: str) -> tuple[int, str]:
    pub = str(folder / "signing.pub.pem")
    result = CliRunner().invoke(app, ["audit", str(folder), "--public-key", pub, *more])
    return result.exit_code, " ".join(result.output.split())


def test_each_gate_and_the_seal_leave_a_token_openssl_verifies(anchored: Anchored) -> None:
    root, ca = anchored.root, anchored.tsa.tsa_ca
    tokens = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.tsr"))
    assert [t.split("/")[-1].split(".")[0] for t in tokens] == sorted(
        [*GATES, "seal", "SHA256SUMS"]
    )
    for token in tokens:
        query = token.removesuffix(".tsr") + ".tsq"
        run = subprocess.run(
            ["openssl", "ts", "-verify", "-in", token, "-queryfile", query, "-CAfile", str(ca)],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, token + run.stderr
        assert "Verification: OK" in run.stdout
    sums = hashlib.sha256((root / "SHA256SUMS").read_bytes()).hexdigest()
    by_digest = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "SHA256SUMS.tsr", "-digest", sums, "-CAfile", str(ca)],
        cwd=root,
        capture_output=True,
        check=False,
    )
    assert by_digest.returncode == 0
    listed = (root / "SHA256SUMS").read_text()
    assert "timestamps/seal.tsr" in listed
    assert "SHA256SUMS.tsr" not in listed


def test_audit_and_verify_sh_check_the_tokens_with_the_authority_ca(anchored: Anchored) -> None:
    ca = str(anchored.tsa.tsa_ca)
    code, output = _audit(anchored.root, "--tsa-ca", ca)
    assert code == 0, output
    code, output = _audit(anchored.root)
    assert code == 1
    assert "--tsa-ca" in output
    pub = str(anchored.root / "signing.pub.pem")
    run = subprocess.run(
        ["sh", "verify.sh", "--public-key", pub, "--tsa-ca", ca],
        cwd=anchored.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 time-stamp tokens verify" in run.stdout


def test_a_token_of_another_authority_fails_openssl_verification(
    anchored: Anchored, tmp_path: Path
) -> None:
    from tests.servers.tsa import make_tsa_certs

    other_ca = make_tsa_certs(tmp_path / "other")
    code, output = _audit(anchored.root, "--tsa-ca", str(other_ca))
    assert code == 1
    assert "openssl ts -verify" in output


def _rechain(folder: Path, old: str, new: str) -> None:
    """Edit the first event of the run holding ``old`` and recompute the whole chain and
    head.json, as someone holding the signing key would before re-signing."""
    head = json.loads((folder / "head.json").read_text())
    assert head["encoding_3_from"] in (None, 1) or head["encoding_3_from"] <= head["from_seq"]
    lines = (folder / "ledger.jsonl").read_text().splitlines()
    edited = next(i for i, line in enumerate(lines) if old in line and "omitted" not in line)
    lines[edited] = canonical(json.loads(lines[edited].replace(old, new, 1)))
    h = head["prev_hash"]
    for line in lines:
        data = json.loads(line)
        h = link(h, data["line_sha256"] if "omitted" in data else line_digest(line))
    (folder / "ledger.jsonl").write_text("".join(line + "\n" for line in lines))
    head["chain_head"] = h
    (folder / "head.json").write_text(json.dumps(head, indent=1))
    page = json.loads((folder / "index.json").read_text())
    page["head"] = head
    (folder / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))


def test_a_chain_rewritten_and_resigned_with_the_genuine_key_is_caught_by_the_tokens(
    anchored: Anchored,
) -> None:
    copy = anchored.scratch / "rewritten"
    import shutil

    shutil.copytree(anchored.root, copy)
    _rechain(copy, '"actor":"t"', '"actor":"someone else"')
    resign(copy, anchored.keys.signing_key())
    (copy / "head.json.sig").write_bytes(
        anchored.keys.signing_key().sign((copy / "head.json").read_bytes())
    )
    code, output = _audit(copy, "--tsa-ca", str(anchored.tsa.tsa_ca))
    assert code == 1
    assert "rewritten after it was time-stamped" in output  # a gate's token
    assert "timestamps/seal.tsr: time-stamps" in output  # the seal's head
    assert "SHA256SUMS.tsr: time-stamps" in output
    pub, ca = str(copy / "signing.pub.pem"), str(anchored.tsa.tsa_ca)
    run = subprocess.run(
        ["sh", "verify.sh", "--public-key", pub, "--tsa-ca", ca],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout
    assert "does not time-stamp" in run.stderr


def test_an_unreachable_authority_stops_the_first_gate_naming_the_connection(
    tmp_path: Path,
) -> None:
    plan = demo_plan_with(tmp_path / "plan", EVIDENCE)
    port = free_port()  # nothing listens there
    down = ConnectionInfo("tsa", "http", "127.0.0.1", None, None, port, "http", {"timeout": 5})
    with pytest.raises(TimestampError, match=r"time-stamping authority tsa .*cannot be reached"):
        demo_run(tmp_path, plan=plan, connections={"tsa": down})
    import sqlite3

    with sqlite3.connect(tmp_path / "ledger.sqlite") as conn:
        kinds = {k for (k,) in conn.execute("SELECT kind FROM events")}
    assert "gate_passed" in kinds  # the inventory gate passed, then could not anchor
    assert "timestamp_anchored" not in kinds
    assert not any("delet" in k or "backup" in k for k in kinds), kinds
    with sqlite3.connect(tmp_path / "src" / "crm.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 30


def test_an_authority_that_refuses_the_request_is_an_error_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    from retirement.phases.anchor import time_stamp

    server = run_tsa(tmp_path, digests="sha512")  # a SHA-256 request gets a rejection
    strict = next(server)
    try:
        with pytest.raises(TimestampError, match=r"authority tsa refused to time-stamp"):
            time_stamp(strict.connection, "ab" * 32, tmp_path / "out", "gate_inventory.1")
    finally:
        server.close()
    assert len(strict.replies) == 1  # it answered, with a rejection
    assert not (tmp_path / "out").exists()


def test_index_shows_each_gate_time_stamp_and_a_page_that_hides_one_is_caught(
    anchored: Anchored,
) -> None:
    import shutil

    from retirement.evidence.dossier_pages import render_index

    page = json.loads((anchored.root / "index.json").read_text())
    assert [a["payload"]["at"] for a in page["anchors"]] == list(GATES)
    html = (anchored.root / "index.html").read_text()
    for anchor in page["anchors"]:
        token = anchor["payload"]["token"]
        assert f"timestamps/{token}" in html
        assert anchor["payload"]["gen_time"] in html
        assert (anchored.root / "timestamps" / token).is_file()

    copy = anchored.scratch / "hidden-anchor"
    shutil.copytree(anchored.root, copy)
    page["anchors"] = page["anchors"][:-1]  # the deletion gate's time-stamp left off the page
    (copy / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))
    (copy / "index.html").write_text(render_index(page))
    resign(copy, anchored.keys.signing_key())
    code, output = _audit(copy, "--tsa-ca", str(anchored.tsa.tsa_ca))
    assert code == 1
    assert "what it shows of the time-stamps is not what the chain" in output


def test_a_dossier_without_an_authority_says_nothing_anchors_it(tmp_path: Path) -> None:
    demo = demo_run(tmp_path)
    index = seal(demo.ctx())
    demo.ledger.close()
    page = json.loads((index.parent / "index.json").read_text())
    assert page["anchors"] == []
    assert "names no time-stamping authority" in index.read_text()
