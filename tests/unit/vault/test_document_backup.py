"""Documents, small and large: the recipient's standard tools read them, a document that
grows while read is refused, and either way of encrypting gives the same formats."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO

import pyrage
import pytest

from retirement.crypto.keys import KeyStore
from retirement.errors import BackupError
from retirement.sources.base import Named
from retirement.sources.files import FileSource
from retirement.vault.write import SMALL_OBJECT
from tests.support.backups import back_up_table


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    master = KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    return KeyStore(tmp_path / "keys", master)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(1, id="one-byte"),
        pytest.param(5000, id="small"),
        pytest.param(SMALL_OBJECT - 1, id="largest-in-memory"),
        pytest.param(SMALL_OBJECT, id="smallest-streamed"),
    ],
)
def test_a_document_decrypts_with_age_and_zstd_to_its_bytes(
    keys: KeyStore, tmp_path: Path, size: int
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    content = bytes((i * 7) % 251 for i in range(size))
    (folder / "scan.pdf").write_bytes(content)
    recipient = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "recipient.key"
    key_file.write_text(f"{recipient}\n")
    with FileSource("files", folder) as source:
        result = back_up_table(source, "scan.pdf", keys, tmp_path / "vault", kind="document")
    age = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(result.ciphertext_path)],
        capture_output=True,
        check=False,
    )
    assert age.returncode != 0  # not a recipient of this backup: only the archive key is
    archive = tmp_path / "archive.key"
    archive.write_text(f"{keys.identity('demo', 'erase')}\n")
    age = subprocess.run(
        ["age", "-d", "-i", str(archive), str(result.ciphertext_path)],
        capture_output=True,
        check=True,
    )
    plain = subprocess.run(["zstd", "-d", "-c"], input=age.stdout, capture_output=True, check=True)
    assert plain.stdout == content
    recorded = result.manifest.extra["source_object"]
    assert (recorded["size"], recorded["sha256"]) == (
        result.manifest.plaintext_size,
        result.manifest.plaintext_sha256,
    )


class _GrowsWhenOpened(FileSource):
    """A named fake of an interleaving: another program appends to the file just after the
    backup took its size and before it reads it (the file and reads are real)."""

    def open_bytes(self, dataset: Named) -> IO[bytes]:
        with (self.root / str(dataset)).open("ab") as f:
            f.write(b"x" * 100)
        return super().open_bytes(dataset)


@pytest.mark.parametrize("size", [1000, SMALL_OBJECT + 1000])
def test_a_document_that_grows_while_read_is_refused_and_nothing_is_kept(
    keys: KeyStore, tmp_path: Path, size: int
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "log.txt").write_bytes(b"y" * size)
    with (
        _GrowsWhenOpened("files", folder) as source,
        pytest.raises(BackupError, match="while it was read"),
    ):
        back_up_table(source, "log.txt", keys, tmp_path / "vault", kind="document")
    assert not [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]
