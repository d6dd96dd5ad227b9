"""`retirement audit` trusts only the published signing key: it refuses to run without it,
and a dossier re-signed throughout with another key fails."""

from __future__ import annotations

import hashlib
import subprocess
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.crypto.keys import fingerprint, load_public_key
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from tests.unit.evidence.conftest import Sealed


def _audit(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", *args])
    return result.exit_code, result.output


def test_without_a_published_key_the_audit_refuses_and_says_how_to_get_one(
    sealed: Sealed,
) -> None:
    code, output = _audit(str(sealed.root))
    assert code == 2
    assert "--public-key" in output
    assert "--key-fingerprint" in output
    assert "published" in output
    code, output = _audit(str(sealed.root), "--key-fingerprint", "SHA256:abc")
    assert code == 2
    assert "not a key fingerprint" in output


def test_the_fingerprint_is_the_sha256_of_the_der_key_as_openssl_prints_it(
    sealed: Sealed,
) -> None:
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(sealed.published), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    key = load_public_key(sealed.published.read_bytes())
    assert fingerprint(key) == "SHA256:" + hashlib.sha256(der).hexdigest()
    code, output = _audit(str(sealed.root), "--key-fingerprint", fingerprint(key))
    assert code == 0, output
    assert f"with key {fingerprint(key)}" in " ".join(output.split())
    code, output = _audit(str(sealed.root), "--public-key", str(sealed.published))
    assert code == 0, output


def test_a_dossier_resigned_with_another_key_fails(sealed: Sealed) -> None:
    copy = sealed.copy("other-key")
    other = Ed25519PrivateKey.generate()
    pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (copy / "signing.pub.pem").write_bytes(pem)
    resign(copy, other)
    genuine = fingerprint(load_public_key(sealed.published.read_bytes()))
    code, output = _audit(str(copy), "--key-fingerprint", genuine)
    assert code == 1
    assert "signed by another key" in output
    code, output = _audit(str(copy), "--public-key", str(sealed.published))
    assert code == 1
    assert "SHA256SUMS.sig does not verify" in " ".join(output.split())
    # ...while the key it names itself would pass: which is why the audit never uses it.
    code, output = _audit(str(copy), "--public-key", str(copy / "signing.pub.pem"))
    assert code == 0, output


def test_audit_archives_checks_every_age_file_and_delivered_copy(sealed: Sealed) -> None:
    import shutil

    dest = sealed.root.parents[2] / "dest"
    copies = sealed.scratch / "audit-archives"
    shutil.copytree(dest, copies)
    identity = sealed.scratch / "audit-archive.key"
    identity.write_text(str(sealed.keys.identity("demo", "accounting_archive")) + "\n")
    key = ["--public-key", str(sealed.published)]
    archive = ["--archives", str(copies / "archive")]
    code, output = _audit(
        str(sealed.root), *key, *archive, "--archives", str(copies / "successor_drop")
    )
    assert code == 0, output
    code, output = _audit(str(sealed.root), *key, *archive, "--identity", str(identity))
    assert code == 0, output
    # The identity of another disposition opens nothing here: said, not passed.
    code, output = _audit(
        str(sealed.root),
        *key,
        "--archives",
        str(copies / "successor_drop"),
        "--identity",
        str(identity),
    )
    assert code == 1
    assert "cannot be decrypted" in output
    (age_file,) = (copies / "archive").rglob("*.age")
    data = bytearray(age_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    age_file.write_bytes(bytes(data))
    code, output = _audit(str(sealed.root), *key, *archive)
    assert code == 1
    assert "sha256 differs from manifests/" in " ".join(output.split())
    (copy,) = (copies / "successor_drop").rglob("crm.customers/*.manifest.json")
    copy.write_text(copy.read_text().replace('"rows"', '"rows" ', 1))
    code, output = _audit(str(sealed.root), *key, "--archives", str(copies / "successor_drop"))
    assert code == 1
    assert "not the dossier's signed manifests/" in " ".join(output.split())


def test_ledger_verify_accepts_the_head_signed_in_the_dossier(sealed: Sealed) -> None:
    """seal signs head.json, then appends dossier_sealed after that head: the signed head is
    a prefix of the ledger's chain, which is what --expect-head checks."""
    import json

    head = json.loads((sealed.root / "head.json").read_text())
    url = f"sqlite:///{sealed.root.parents[2] / 'ledger.sqlite'}"
    args = ["ledger", "verify", "--ledger", url, "--expect-head", head["chain_head"]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"is event {head['events']}; 1 event(s) were appended after it" in text
    result = CliRunner().invoke(app, [*args[:-1], "f" * 64])
    assert result.exit_code == 1
