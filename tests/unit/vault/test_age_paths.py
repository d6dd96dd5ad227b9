"""The two ways a backup is encrypted and read: the ``age`` command where it is installed,
pyrage in process where it is not. Each writes files the other reads (and the recipient's
own ``age -d`` reads), and each reports a flipped byte, a cut file and a wrong key as an
IntegrityError before a consumer sees the end of the data."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from typing import TYPE_CHECKING

import pyrage
import pytest

from retirement.crypto.age import decrypted_chunks
from retirement.crypto.keys import KeyStore, load_public_key
from retirement.errors import IntegrityError
from retirement.vault.verify import restore_to_file, verify_backup
from tests.support.backups import backed_up

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.vault.write import BackupResult

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="needs the age command")
WAYS = ["age", "pyrage"]


def _use(way: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``pyrage``: a PATH where no ``age`` command is (the library falls back to pyrage)."""
    if way == "pyrage":
        empty = tmp_path / "no-age-here"
        empty.mkdir(exist_ok=True)
        monkeypatch.setenv("PATH", str(empty))
    else:
        monkeypatch.setenv("PATH", str(shutil.which("age")).rsplit("/", 1)[0])
    assert (shutil.which("age") is None) == (way == "pyrage")


def _backed_up(tmp_path: Path) -> tuple[BackupResult, KeyStore]:
    """The demo's customers backed up (40 rows) and the key store it used."""
    result, master_file = backed_up(tmp_path)
    secret = master_file.read_text().splitlines()[-1]  # after its "# public key" comment
    return result, KeyStore(tmp_path / "keys", secret)


def _plain(keys: KeyStore, manifest: Path) -> bytes:
    out = io.BytesIO()
    pub = load_public_key(keys.public_signing_key_pem())
    restore_to_file(manifest, out, pub, [keys.identity("demo", "hand_over")])
    return out.getvalue()


@pytest.mark.parametrize("writer", WAYS)
@pytest.mark.parametrize("reader", WAYS)
def test_each_way_reads_what_the_other_wrote(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: str,
    reader: str,
) -> None:
    age = shutil.which("age")
    with monkeypatch.context() as m:
        _use(writer, m, tmp_path)
        result, keys = _backed_up(tmp_path)
    with monkeypatch.context() as m:
        _use(reader, m, tmp_path)
        pub = load_public_key(keys.public_signing_key_pem())
        report = verify_backup(result.manifest_path, pub, [keys.identity("demo", "hand_over")])
        plain = _plain(keys, result.manifest_path)
    assert report.rows == result.manifest.fingerprint.rows == 40
    assert hashlib.sha256(plain).hexdigest() == result.manifest.plaintext_sha256
    by_recipient = subprocess.run(  # what the successor runs, with the key on stdin
        [str(age), "-d", "-i", "-", str(result.ciphertext_path)],
        input=(tmp_path / "successor.key").read_bytes(),
        capture_output=True,
        check=True,
    )
    assert by_recipient.stdout  # zstd frames; decompressed by the library above
    cipher = result.ciphertext_path.read_bytes()
    assert result.manifest.ciphertext_sha256 == hashlib.sha256(cipher).hexdigest()


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("fault", ["flipped", "cut", "wrong key", "not zstd"])
def test_each_way_reports_a_damaged_file_or_a_wrong_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    way: str,
    fault: str,
) -> None:
    result, keys = _backed_up(tmp_path)
    identity = keys.identity("demo", "hand_over")
    data = result.ciphertext_path.read_bytes()
    damaged = tmp_path / "damaged.age"
    if fault == "flipped":
        damaged.write_bytes(data[:-20] + bytes([data[-20] ^ 0x40]) + data[-19:])
    elif fault == "cut":
        damaged.write_bytes(data[:-100])
    elif fault == "wrong key":
        damaged.write_bytes(data)
        identity = pyrage.x25519.Identity.generate()
    else:  # a well-formed age file whose content is no zstd stream
        recipient = keys.archive_key("demo", "hand_over").recipient
        damaged.write_bytes(
            pyrage.encrypt(b"not zstd " * 100_000, [pyrage.x25519.Recipient.from_str(recipient)])
        )
    _use(way, monkeypatch, tmp_path)
    expected = "not valid zstd" if fault == "not zstd" else "cannot be decrypted"
    with pytest.raises(IntegrityError, match=expected):
        for _ in decrypted_chunks(damaged, [identity]):
            pass


def test_an_age_older_than_1_1_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """age 1.0 cannot read an identity from standard input (``-i -``): the library uses pyrage
    then. A fake (named so): a script that answers ``--version`` as age 1.0.0 would, and
    fails anything else, so a backup that used it would fail."""
    from retirement.crypto.age import age_command

    old = tmp_path / "old-age" / "age"
    old.parent.mkdir()
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo v1.0.0; exit 0; }\nexit 9\n')
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(old.parent))
    assert age_command() is None
    result, keys = _backed_up(tmp_path / "run")
    plain = _plain(keys, result.manifest_path)
    assert hashlib.sha256(plain).hexdigest() == result.manifest.plaintext_sha256
