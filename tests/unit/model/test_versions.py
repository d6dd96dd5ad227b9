"""Formats carry a version and readers refuse one they do not know (restic's rule); files
written before versions were recorded read as version 1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from retirement.crypto.signing import write_detached
from retirement.errors import IntegrityError
from retirement.evidence.audit import audit
from retirement.evidence.certificate import verify_certificate
from retirement.model.manifest import Manifest, SourceFingerprint
from retirement.model.versions import MANIFEST_FORMAT, check_version

MANIFEST = Manifest(
    plan="demo",
    dataset="crm.customers",
    disposition="erase",
    format="csv",
    columns=({"name": "id", "type": "INTEGER"},),
    fingerprint=SourceFingerprint(rows=1, row_digest="0" * 64),
    plaintext_sha256="1" * 64,
    plaintext_size=10,
    ciphertext_sha256="2" * 64,
    ciphertext_size=20,
    ciphertext_file="x.csv.zst.age",
    compression="zstd",
    encryption="age",
    recipients=("age1x",),
    created_at="2026-11-23T08:00:00+00:00",
    tool="retirement test",
)


@pytest.mark.parametrize(
    ("found", "message"),
    [
        pytest.param(2, "newer than this retirement reads", id="newer"),
        pytest.param(0, "not a format version", id="zero"),
        pytest.param("1", "not a format version", id="text"),
        pytest.param(True, "not a format version", id="boolean"),
    ],
)
def test_unknown_versions_are_refused_by_name(found: object, message: str) -> None:
    with pytest.raises(IntegrityError, match=f"x.json: format_version .* is {message}"):
        check_version(found, 1, what="x.json")


def test_a_manifest_records_its_version_and_one_without_reads_as_version_1() -> None:
    data = json.loads(MANIFEST.to_bytes())
    assert data["format_version"] == MANIFEST_FORMAT == 1
    del data["format_version"]  # as written before versions were recorded
    assert Manifest.from_bytes(json.dumps(data).encode()) == MANIFEST


def test_a_manifest_of_a_newer_format_is_refused() -> None:
    data = {**json.loads(MANIFEST.to_bytes()), "format_version": 2}
    with pytest.raises(IntegrityError, match="m.json: format_version 2 is newer"):
        Manifest.from_bytes(json.dumps(data).encode(), where="m.json")


def test_a_certificate_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "cos-1.json"
    write_detached(path, json.dumps({"format_version": 9, "certificate_id": "cos-1"}).encode(), key)
    with pytest.raises(IntegrityError, match="format_version 9 is newer"):
        verify_certificate(path, key.public_key())
    write_detached(path, json.dumps({"certificate_id": "cos-1"}).encode(), key)
    assert verify_certificate(path, key.public_key())["certificate_id"] == "cos-1"


@pytest.mark.parametrize(("version", "problems"), [(None, 0), (1, 0), (7, 1)])
def test_the_audit_reads_only_dossier_formats_it_knows(
    tmp_path: Path, version: int | None, problems: int
) -> None:
    key = Ed25519PrivateKey.generate()
    head = {"run_id": "r", "events": 0, "chain_head": "0" * 64, "generated": "x"}
    if version is not None:
        head["format_version"] = version
    (tmp_path / "head.json").write_text(json.dumps(head))
    (tmp_path / "ledger.jsonl").write_text("")
    sums = "".join(
        f"{hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()}  {n}\n"
        for n in ("head.json", "ledger.jsonl")
    )
    write_detached(tmp_path / "SHA256SUMS", sums.encode(), key)
    found = audit(tmp_path, key.public_key())
    assert len(found) == problems, found
    if problems:
        assert "head.json: format_version 7 is newer" in found[0]
