"""A file rewritten while it is backed up: the digest a backup records of the file must be
the digest of the bytes the backup holds, or deletion later removes a file whose content
is not in the backup.

The race is real: a writer thread rewrites the file in place (truncate, then the same
bytes again), as a program saving a file does, while backups of it run. A backup may fail
("changed while read") or succeed; when it succeeds, what it recorded of the file and what
it holds must agree, and a file the backup does not hold in full must not be deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retirement.crypto.keys import KeyStore, load_public_key
from retirement.deletion.objects import delete_object
from retirement.errors import BackupError, DeletionRefused, ObjectChanged, SourceError
from retirement.model.ids import DatasetId
from retirement.sources.files import FileSource
from retirement.sources.pinned import BLOCK, PinnedFile, PinnedReader
from retirement.vault.verify import restore_to_file
from tests.support.backups import back_up_table

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    master = KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    return KeyStore(tmp_path / "keys", master)


def _rewriter(path: Path, content: bytes, stop: threading.Event) -> None:
    """Rewrite ``path`` in place with ``content`` until ``stop``: truncated, and a moment
    later written again whole (a reader in between sees a shorter file)."""
    pause = random.Random(1)
    while not stop.is_set():
        with path.open("r+b") as f:
            f.truncate(0)
            f.flush()
            time.sleep(0.0005)
            f.write(content)
        time.sleep(pause.uniform(0.0, 0.02))  # whole for a while: some backups succeed


def _racing_backups(keys: KeyStore, tmp_path: Path, name: str, content: bytes, runs: int):
    root = tmp_path / "files"
    root.mkdir()
    path = root / name
    path.write_bytes(content)
    source = FileSource("files", root)
    kind = source.datasets()[0].kind
    stop = threading.Event()
    writer = threading.Thread(target=_rewriter, args=(path, content, stop), daemon=True)
    writer.start()
    made = []
    try:
        for _ in range(runs):
            with contextlib.suppress(BackupError):  # refused, nothing kept: allowed
                made.append(back_up_table(source, name, keys, tmp_path / "vault", kind=kind))
    finally:
        stop.set()
        writer.join()
    assert path.read_bytes() == content  # the writer always ends with the whole file
    return source, made


def test_a_document_rewritten_while_backed_up_is_never_recorded_as_bytes_it_does_not_hold(
    keys: KeyStore, tmp_path: Path
) -> None:
    content = b"".join(b"line %08d of a document the company kept\n" % i for i in range(60_000))
    source, made = _racing_backups(keys, tmp_path, "notes.log", content, runs=40)
    whole = hashlib.sha256(content).hexdigest()
    public = load_public_key(keys.public_signing_key_pem())
    for result in made:
        manifest = result.manifest
        recorded = manifest.extra["source_object"]
        assert recorded["sha256"] == manifest.plaintext_sha256, "recorded a digest of other bytes"
        assert recorded["size"] == manifest.plaintext_size
        restored = io.BytesIO()
        restore_to_file(result.manifest_path, restored, public, [keys.identity("demo", "erase")])
        held = hashlib.sha256(restored.getvalue()).hexdigest()
        assert held == manifest.plaintext_sha256
        ds = DatasetId("files", "notes.log")
        if held != whole:
            with pytest.raises(DeletionRefused):
                delete_object(source, ds, manifest, sibling=lambda _, m=manifest: m)
            assert (tmp_path / "files" / "notes.log").exists()


def test_a_csv_file_rewritten_while_backed_up_holds_every_row_of_the_file_it_recorded(
    keys: KeyStore, tmp_path: Path
) -> None:
    content = b"id,name\n" + b"".join(b"%d,customer %d\n" % (i, i) for i in range(80_000))
    rows = content.count(b"\n") - 1
    _, made = _racing_backups(keys, tmp_path, "customers.csv", content, runs=40)
    whole = hashlib.sha256(content).hexdigest()
    for result in made:
        recorded = result.manifest.extra["source_object"]
        if recorded["sha256"] == whole:
            assert result.manifest.fingerprint.rows == rows, (
                "the backup recorded the whole file but holds only part of its rows"
            )


def test_after_the_writer_stops_the_backup_records_the_whole_file_and_every_row(
    keys: KeyStore, tmp_path: Path
) -> None:
    """The same race's aftermath, so the tests above also see the ordinary success."""
    content = b"id,name\n" + b"".join(b"%d,customer %d\n" % (i, i) for i in range(80_000))
    source, _ = _racing_backups(keys, tmp_path, "customers.csv", content, runs=3)
    result = back_up_table(source, "customers.csv", keys, tmp_path / "vault")
    recorded = result.manifest.extra["source_object"]
    assert recorded["sha256"] == hashlib.sha256(content).hexdigest()
    assert recorded["size"] == len(content)
    assert result.manifest.fingerprint.rows == 80_000


# ---------------------------------------------------------------------- PinnedFile, step by step


@contextlib.contextmanager
def _pinned(path: Path, *, document: bool = False) -> Iterator[PinnedFile]:
    fd = os.open(path, os.O_RDONLY)
    try:
        yield PinnedFile(fd, str(path), document=document)
    finally:
        os.close(fd)


def _reader(pinned: PinnedFile) -> io.BufferedReader:
    return io.BufferedReader(PinnedReader(pinned))


def _rewrite(path: Path, content: bytes) -> None:
    """In place (same inode), keeping the modification time: only the bytes tell."""
    before = path.stat()
    with path.open("r+b") as f:
        f.truncate(0)
        f.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


BLOCKS = [bytes([65 + i]) * BLOCK for i in range(3)]  # three 1 MiB blocks: AAA.., BBB.., CCC..


def test_a_file_read_whole_gives_the_digest_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"".join(BLOCKS) + b"tail")
    with _pinned(path) as pinned:
        assert _reader(pinned).read(10) == b"A" * 10  # a header first
        assert _reader(pinned).read() == path.read_bytes()  # then everything, again
        size, sha = pinned.state()
    assert (size, sha) == (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())


def test_bytes_that_differ_between_two_reads_of_the_same_block_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"".join(BLOCKS))
    with _pinned(path) as pinned:
        _reader(pinned).read(BLOCK + 5)  # blocks 0 and 1
        _rewrite(path, BLOCKS[0] + b"X" * BLOCK + BLOCKS[2])
        with pytest.raises(ObjectChanged, match="differ"):
            _reader(pinned).read(BLOCK + 5)  # block 0 (another cached), block 1 differs


def test_a_file_changed_and_changed_back_while_read_is_refused(tmp_path: Path) -> None:
    """The race the hash before and after missed: what the reader saw in the middle was not
    the file both hashes saw."""
    path = tmp_path / "t.csv"
    whole = b"".join(BLOCKS)
    path.write_bytes(whole)
    with _pinned(path) as pinned:
        reader = _reader(pinned)
        reader.read(BLOCK)
        _rewrite(path, BLOCKS[0] + b"X" * BLOCK + BLOCKS[2])
        reader.read(BLOCK)  # the other bytes, in block 1
        _rewrite(path, whole)
        reader.read()
        with pytest.raises(ObjectChanged, match="differ"):
            pinned.state()


def test_a_file_cut_short_while_read_and_made_whole_again_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    whole = b"".join(BLOCKS)
    path.write_bytes(whole)
    with _pinned(path) as pinned:
        reader = _reader(pinned)
        reader.read(BLOCK)
        _rewrite(path, BLOCKS[0] + b"B" * 100)
        assert len(reader.read()) == 100  # the reader saw the end early
        _rewrite(path, whole)
        with pytest.raises(ObjectChanged, match="differ"):
            pinned.state()


def test_a_file_that_grew_after_a_reader_asked_its_size_is_refused(tmp_path: Path) -> None:
    """A Parquet reader finds the footer from the end: a file longer at the end was not the
    file it read."""
    path = tmp_path / "t.parquet"
    path.write_bytes(b"".join(BLOCKS[:2]))  # exactly two blocks: no short block marks the end
    with _pinned(path) as pinned:
        reader = _reader(pinned)
        reader.seek(-8, io.SEEK_END)
        reader.read(8)
        with path.open("ab") as f:
            f.write(b"more")
        os.utime(path, ns=(0, path.stat().st_mtime_ns))
        with pytest.raises(ObjectChanged, match="size was"):
            pinned.state()


def test_a_document_is_what_was_streamed_and_must_be_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(b"".join(BLOCKS))
    with _pinned(path, document=True) as pinned:
        data = _reader(pinned).read()
        digest = (len(data), hashlib.sha256(data).hexdigest())
        assert pinned.state(digest) == digest
        with pytest.raises(ObjectChanged, match="not read to its end"):
            pinned.state((len(data) - 1, digest[1]))
        with pytest.raises(ObjectChanged, match="out of order"):
            pinned.read_at(0, 10)


def test_a_document_whose_modification_time_moved_while_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(b"".join(BLOCKS))
    with _pinned(path, document=True) as pinned:
        data = _reader(pinned).read()
        os.utime(path, ns=(0, 1))
        with pytest.raises(ObjectChanged, match="modification time"):
            pinned.state((len(data), hashlib.sha256(data).hexdigest()))


def test_a_file_shorter_at_the_end_than_a_block_a_reader_used_is_refused(tmp_path: Path) -> None:
    """A reader that skipped to the last block (an index at the end) used bytes the file no
    longer has, though every block it still has is the same."""
    path = tmp_path / "t.xlsx"
    path.write_bytes(b"".join(BLOCKS))
    with _pinned(path) as pinned:
        reader = _reader(pinned)
        reader.read(10)
        reader.seek(2 * BLOCK)
        reader.read(10)
        with path.open("r+b") as f:
            f.truncate(BLOCK + 10)
        with pytest.raises(ObjectChanged, match="longer when read"):
            pinned.state()


def test_a_second_pin_of_the_same_file_is_refused_and_leaves_the_first_in_place(
    tmp_path: Path,
) -> None:
    """Two backups of one file through one source at once (two threads): the second is
    refused, and its refusal neither replaces nor removes the first one's pin (a review found
    the first's reads could go through the second's descriptor)."""
    (tmp_path / "a.csv").write_bytes(b"id,name\n1,x\n")
    source = FileSource("files", tmp_path)
    with source.pinned("a.csv") as first:
        refused: list[BaseException] = []

        def second() -> None:
            try:
                with source.pinned("a.csv"):
                    pass
            except SourceError as exc:
                refused.append(exc)

        worker = threading.Thread(target=second)
        worker.start()
        worker.join()
        assert refused
        assert "already being backed up" in str(refused[0])
        assert source.schema("a.csv")[0].name == "id"  # read through the first pin
        assert first.state()["sha256"] == hashlib.sha256(b"id,name\n1,x\n").hexdigest()
    with source.pinned("a.csv") as again:  # the first's end removed its own pin
        assert again.state()["size"] == 12


def test_a_change_of_mode_or_links_alone_while_read_does_not_fail_the_backup(
    keys: KeyStore, tmp_path: Path
) -> None:
    """A chmod or a hard link (a snapshot tool) moves the inode change time, not a byte."""
    (tmp_path / "files").mkdir()
    path = tmp_path / "files" / "a.csv"
    path.write_bytes(b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(1000)))

    class _ChangedAside(FileSource):
        def schema(self, dataset):  # noqa: ANN001, ANN202 - the interleaving, at a set point
            path.chmod(0o640)
            if not (tmp_path / "snapshot.csv").exists():
                os.link(path, tmp_path / "snapshot.csv")
            return super().schema(dataset)

    with _ChangedAside("files", tmp_path / "files") as source:
        result = back_up_table(source, "a.csv", keys, tmp_path / "vault")
    assert result.manifest.fingerprint.rows == 1000
