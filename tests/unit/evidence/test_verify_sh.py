"""verify.sh, shipped in every dossier: docs/audit.md's offline procedure with sha256sum,
openssl, age and zstd in a POSIX shell, run against a sealed demo dossier and tampered
copies of it; and the listing check docs/audit.md gives as commands."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retirement.crypto.keys import fingerprint, load_public_key
from retirement.evidence.audit import audit
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from tests.unit.evidence.conftest import Sealed

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("sh", "sha256sum", "openssl", "age", "zstd")),
    reason="needs sh, sha256sum, openssl, age and zstd",
)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "audit.md"


def _verify(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """verify.sh as an auditor runs it: with dash (a strict POSIX shell) when there is one."""
    shell = shutil.which("dash") or "sh"
    return subprocess.run(
        [shell, "verify.sh", *args], cwd=folder, capture_output=True, text=True, check=False
    )


def _fingerprint(sealed: Sealed) -> str:
    return fingerprint(load_public_key(sealed.published.read_bytes()))


def test_verify_sh_accepts_the_dossier_with_the_published_key_or_fingerprint(
    sealed: Sealed,
) -> None:
    head = json.loads((sealed.root / "head.json").read_text())
    for args in (
        ["--public-key", str(sealed.published)],
        ["--key-fingerprint", _fingerprint(sealed)],
    ):
        done = _verify(sealed.root, *args)
        assert done.returncode == 0, done.stderr
        assert f"the chain recomputes to the signed head {head['chain_head']}" in done.stdout
        assert "the listing in SHA256SUMS is exactly the files present" in done.stdout
    refused = _verify(sealed.root)
    assert refused.returncode == 2
    assert "published" in refused.stderr


def test_an_added_file_passes_sha256sum_but_not_the_listing_check(sealed: Sealed) -> None:
    copy = sealed.copy("added")
    (copy / "certificates" / "extra.json").write_text("{}")
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=copy, check=True)
    done = _verify(copy, "--public-key", str(sealed.published))
    assert done.returncode == 1
    assert "added: certificates/extra.json" in done.stderr
    key = load_public_key(sealed.published.read_bytes())
    assert "certificates/extra.json: not listed in SHA256SUMS (added later)" in audit(copy, key)
    listing = _listing_commands()
    docs = subprocess.run(["sh", "-c", listing], cwd=copy, capture_output=True, text=True)
    assert docs.returncode != 0
    assert "certificates/extra.json" in docs.stdout
    clean = subprocess.run(["sh", "-c", listing], cwd=sealed.root, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def _listing_commands() -> str:
    """The listing check exactly as docs/audit.md gives it."""
    block = re.search(r"<!-- listing check -->\n```sh\n(.*?)```", DOCS.read_text(), re.S)
    assert block, "docs/audit.md lost its listing check"
    return block.group(1)


def _flip_line(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param("byte", "a file differs from its digest", id="flipped-byte"),
        pytest.param("removed", "missing: dossier.pdf", id="removed-file"),
        pytest.param("event", "the chain ends at event", id="edited-event-resigned"),
        pytest.param("other-key", "signed by another key", id="other-key"),
    ],
)
def test_verify_sh_catches_tampering(sealed: Sealed, tamper: str, message: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    copy = sealed.copy(f"sh-{tamper}")
    if tamper == "byte":
        _flip_line(copy / "ledger.jsonl", '"actor":"', '"actor":"x')
    elif tamper == "removed":
        (copy / "dossier.pdf").unlink()
    elif tamper == "event":  # edited, and everything re-signed with the genuine key
        _flip_line(copy / "ledger.jsonl", '"rows":30', '"rows":31')
        resign(copy, sealed.keys.signing_key())
    else:
        other = Ed25519PrivateKey.generate()
        (copy / "signing.pub.pem").write_bytes(
            other.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        resign(copy, other)
    done = _verify(copy, "--key-fingerprint", _fingerprint(sealed))
    assert done.returncode == 1, done.stdout
    assert message in done.stderr


def test_verify_sh_checks_the_archives_and_decrypts_them(sealed: Sealed) -> None:
    dest = sealed.root.parents[2] / "dest"
    archive = sealed.scratch / "archive-copy"
    shutil.copytree(dest / "archive", archive)
    identity = sealed.scratch / "archive.key"
    identity.write_text(str(sealed.keys.identity("demo", "accounting_archive")) + "\n")
    pub = str(sealed.published)
    done = _verify(
        sealed.root, "--public-key", pub, "--archives", str(archive), "--identity", str(identity)
    )
    assert done.returncode == 0, done.stderr
    assert "decrypted and checked" in done.stdout
    (age_file,) = archive.rglob("*.age")
    data = bytearray(age_file.read_bytes())
    data[-1] ^= 0x01
    age_file.write_bytes(bytes(data))
    done = _verify(sealed.root, "--public-key", pub, "--archives", str(archive))
    assert done.returncode == 1
    assert "sha256 differs" in done.stderr
