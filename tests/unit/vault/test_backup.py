"""Backups: round trip, standard tools (age, zstd, openssl), every fault leaves no backup."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyrage
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retirement.crypto.keys import KeyStore, load_public_key
from retirement.crypto.signing import write_detached
from retirement.errors import BackupError, IntegrityError, KeyStoreError
from retirement.formats.csv import (
    KEY_ORDER_METHOD,
    PLAINTEXT_METHOD,
    SUM_METHOD,
    csv_line,
    csv_records,
)
from retirement.sources.files import FileSource
from retirement.sources.sql import SqlSource
from retirement.vault.verify import restore_to_file, verify_backup
from retirement.vault.write import back_up

NOW = "2026-11-23T08:00:00+00:00"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    master = KeyStore.new_master_key(tmp_path / "keys" / "master.key")
    return KeyStore(tmp_path / "keys", master)


@pytest.fixture
def crm(tmp_path: Path) -> Path:
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, note TEXT, "
            "balance REAL, photo BLOB)"
        )
        conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?,?)",
            [
                (
                    i,
                    f"客户{i}",
                    None if i % 7 == 0 else ("" if i % 5 == 0 else f'say "hi"\n{i},x'),
                    i * 1.5,
                    bytes([i % 256]) * 3,
                )
                for i in range(1, 501)
            ],
        )
        conn.execute("CREATE TABLE empty (id INTEGER PRIMARY KEY, v TEXT)")
    return db


def _backup(
    keys: KeyStore,
    db: Path,
    out: Path,
    table: str = "customers",
    extra: list[str] | None = None,
    method: str | None = None,
):
    recipient = keys.archive_key("demo", "erase").recipient
    with SqlSource("crm", f"sqlite:///{db}") as source:
        return back_up(
            source,
            table,
            qualified=f"crm.{table}",
            kind="table",
            plan="demo",
            disposition="erase",
            recipients=[recipient, *(extra or [])],
            out_dir=out,
            signing_key=keys.signing_key(),
            created_at=NOW,
            key_columns=("id",),
            row_digest_method=method,
        )


def _verify(keys: KeyStore, manifest: Path):
    pub = load_public_key(keys.public_signing_key_pem())
    return verify_backup(manifest, pub, [keys.identity("demo", "erase")])


def test_round_trip(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    result = _backup(keys, crm, tmp_path / "vault")
    fp = result.manifest.fingerprint
    assert fp.rows == 500
    assert (fp.key_min, fp.key_max) == ("1", "500")
    report = _verify(keys, result.manifest_path)
    assert report.rows == 500
    assert report.row_digest == fp.row_digest
    assert result.ciphertext_path.name.startswith(result.manifest.ciphertext_sha256[:16])
    assert not list(result.ciphertext_path.parent.glob(".*.partial"))


def test_sum_row_digest_is_order_independent(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    first = _backup(keys, crm, tmp_path / "a", method=SUM_METHOD).manifest.fingerprint
    assert first.row_digest_method == SUM_METHOD
    with sqlite3.connect(crm) as conn:  # same rows, other physical order, no primary key
        conn.execute("CREATE TABLE c2 AS SELECT * FROM customers ORDER BY id DESC")
        conn.execute("DROP TABLE customers")
        conn.execute("ALTER TABLE c2 RENAME TO customers")
    second = _backup(keys, crm, tmp_path / "b").manifest.fingerprint
    assert second.row_digest_method == SUM_METHOD  # no key: no reproducible order
    assert second.row_digest == first.row_digest
    with sqlite3.connect(crm) as conn:
        conn.execute("UPDATE customers SET balance = balance + 1 WHERE id = 3")
    assert _backup(keys, crm, tmp_path / "c").manifest.fingerprint.row_digest != first.row_digest


@pytest.mark.parametrize("method", [PLAINTEXT_METHOD, KEY_ORDER_METHOD])
def test_key_order_row_digest_is_stable_and_catches_a_changed_row(
    keys: KeyStore, crm: Path, tmp_path: Path, method: str
) -> None:
    """Both key-order methods: a new backup's (the plaintext's SHA-256, by default where the
    table has a key) and the older one's (the records' SHA-256, still made when asked)."""
    asked = None if method == PLAINTEXT_METHOD else method  # None: what a new backup uses
    result = _backup(keys, crm, tmp_path / "a", method=asked)
    first = result.manifest
    assert first.fingerprint.row_digest_method == method  # the table has a key
    assert (first.fingerprint.row_digest == first.plaintext_sha256) == (method == PLAINTEXT_METHOD)
    assert _verify(keys, result.manifest_path).rows == 500
    with sqlite3.connect(crm) as conn:  # same rows, other physical order, key kept
        conn.execute(
            "CREATE TABLE c2 (id INTEGER PRIMARY KEY, name TEXT, note TEXT, "
            "balance REAL, photo BLOB)"
        )
        conn.execute("INSERT INTO c2 SELECT * FROM customers ORDER BY id DESC")
        conn.execute("DROP TABLE customers")
        conn.execute("ALTER TABLE c2 RENAME TO customers")
    again = _backup(keys, crm, tmp_path / "b", method=method).manifest.fingerprint
    assert again == first.fingerprint
    with sqlite3.connect(crm) as conn:
        conn.execute("UPDATE customers SET balance = balance + 1 WHERE id = 3")
    changed = _backup(keys, crm, tmp_path / "c", method=method).manifest.fingerprint
    assert (changed.rows, changed.row_digest_method) == (500, method)
    assert changed.row_digest != first.fingerprint.row_digest


def test_a_manifest_without_a_digest_method_still_verifies(
    keys: KeyStore, crm: Path, tmp_path: Path
) -> None:
    """A manifest written before the method was recorded: the order-free sum is assumed."""
    result = _backup(keys, crm, tmp_path / "vault", method=SUM_METHOD)
    data = json.loads(result.manifest_path.read_bytes())
    assert data["fingerprint"].pop("row_digest_method") == SUM_METHOD
    raw = (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    write_detached(result.manifest_path, raw, keys.signing_key())
    report = _verify(keys, result.manifest_path)
    assert report.manifest.fingerprint.row_digest_method == SUM_METHOD
    assert (report.rows, report.row_digest) == (500, result.manifest.fingerprint.row_digest)
    # the same manifest claiming the other method no longer verifies
    data["fingerprint"]["row_digest_method"] = KEY_ORDER_METHOD
    raw = (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    write_detached(result.manifest_path, raw, keys.signing_key())
    with pytest.raises(IntegrityError, match="row digest"):
        _verify(keys, result.manifest_path)


def test_a_plaintext_method_manifest_whose_row_digest_is_another_hash_is_refused(
    keys: KeyStore, crm: Path, tmp_path: Path
) -> None:
    """The plaintext method's row digest is the plaintext's SHA-256: a manifest saying
    otherwise (edited, or written wrong) is refused on reading, before anything uses it."""
    result = _backup(keys, crm, tmp_path / "vault")
    data = json.loads(result.manifest_path.read_bytes())
    assert data["fingerprint"]["row_digest"] == data["plaintext_sha256"]
    data["fingerprint"]["row_digest"] = "0" * 64
    raw = (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    write_detached(result.manifest_path, raw, keys.signing_key())
    with pytest.raises(IntegrityError, match="row digest .sha256-plaintext. is not its plaintext"):
        _verify(keys, result.manifest_path)


def test_recipient_decrypts_with_age_and_zstd(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    recipient = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "recipient.key"
    key_file.write_text(f"{recipient}\n")
    result = _backup(keys, crm, tmp_path / "vault", extra=[str(recipient.to_public())])
    age = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(result.ciphertext_path)],
        capture_output=True,
        check=True,
    )
    plain = subprocess.run(
        ["zstd", "-d", "-c"], input=age.stdout, capture_output=True, check=True
    ).stdout
    rows = list(csv.reader(io.StringIO(plain.decode("utf-8"))))
    assert rows[0] == ["id", "name", "note", "balance", "photo"]
    with sqlite3.connect(crm) as conn:
        source = conn.execute("SELECT * FROM customers ORDER BY id").fetchall()
    assert len(rows) - 1 == len(source)
    for got, want in zip(rows[1:], source, strict=True):
        assert got[0] == str(want[0])
        assert got[1] == want[1]
        assert got[2] == (want[2] or "")
        assert float(got[3]) == want[3]
        assert bytes.fromhex(got[4].removeprefix("\\x")) == want[4]


def test_manifest_signature_verifies_with_openssl(
    keys: KeyStore, crm: Path, tmp_path: Path
) -> None:
    result = _backup(keys, crm, tmp_path / "vault")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(keys.public_signing_key_pem())
    cmd = [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(pub),
        "-rawin",
        "-in",
        str(result.manifest_path),
        "-sigfile",
        f"{result.manifest_path}.sig",
    ]
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    data = json.loads(result.manifest_path.read_text())
    data["fingerprint"]["rows"] = 499
    result.manifest_path.write_text(json.dumps(data))
    assert subprocess.run(cmd, capture_output=True, check=False).returncode != 0
    with pytest.raises(IntegrityError, match="signature .* does not verify"):
        _verify(keys, result.manifest_path)


def test_empty_table(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    result = _backup(keys, crm, tmp_path / "vault", table="empty")
    assert result.manifest.fingerprint.rows == 0
    assert _verify(keys, result.manifest_path).rows == 0


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(1 << 20, id="one-chunk"),
        pytest.param(2 << 20, id="two-chunks"),
        pytest.param((1 << 20) + 1, id="chunk-plus-one"),
    ],
)
def test_documents_of_edge_sizes(keys: KeyStore, tmp_path: Path, size: int) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(bytes(i % 251 for i in range(size)))
    recipient = keys.archive_key("demo", "erase").recipient
    with FileSource("files", folder) as source:
        result = back_up(
            source,
            "scan.pdf",
            qualified="files.scan.pdf",
            kind="document",
            plan="demo",
            disposition="erase",
            recipients=[recipient],
            out_dir=tmp_path / "vault",
            signing_key=keys.signing_key(),
            created_at=NOW,
        )
    assert result.manifest.plaintext_size == size
    target = io.BytesIO()
    pub = load_public_key(keys.public_signing_key_pem())
    restore_to_file(result.manifest_path, target, pub, [keys.identity("demo", "erase")])
    assert target.getvalue() == (folder / "scan.pdf").read_bytes()


def test_flipped_byte_is_named(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    result = _backup(keys, crm, tmp_path / "vault")
    data = bytearray(result.ciphertext_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    result.ciphertext_path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="ciphertext is .* the manifest says"):
        _verify(keys, result.manifest_path)


def test_flipped_byte_fails_decryption_even_with_matching_digest(
    keys: KeyStore, crm: Path, tmp_path: Path
) -> None:
    """Corruption before the digest was taken is still caught: age authenticates every chunk."""
    from retirement.crypto.age import decrypted_chunks

    result = _backup(keys, crm, tmp_path / "vault")
    data = bytearray(result.ciphertext_path.read_bytes())
    data[-20] ^= 0x40
    bad = tmp_path / "bad.age"
    bad.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        b"".join(decrypted_chunks(bad, [keys.identity("demo", "erase")]))


def test_truncated_file(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    from retirement.crypto.age import decrypted_chunks

    result = _backup(keys, crm, tmp_path / "vault")
    short = tmp_path / "short.age"
    short.write_bytes(result.ciphertext_path.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        b"".join(decrypted_chunks(short, [keys.identity("demo", "erase")]))
    result.ciphertext_path.write_bytes(short.read_bytes())
    with pytest.raises(IntegrityError, match="altered or truncated"):
        _verify(keys, result.manifest_path)


def test_wrong_key(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    result = _backup(keys, crm, tmp_path / "vault")
    pub = load_public_key(keys.public_signing_key_pem())
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(IntegrityError, match="cannot be decrypted"):
        verify_backup(result.manifest_path, pub, [other])


def test_bad_recipient_key(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    with (
        SqlSource("crm", f"sqlite:///{crm}") as source,
        pytest.raises(BackupError, match="not an age"),
    ):
        back_up(
            source,
            "customers",
            qualified="crm.customers",
            kind="table",
            plan="demo",
            disposition="erase",
            recipients=["age1bogus"],
            out_dir=tmp_path / "vault",
            signing_key=keys.signing_key(),
            created_at=NOW,
        )
    assert not (tmp_path / "vault").exists() or not any((tmp_path / "vault").rglob("*.age"))


def test_unreadable_source_leaves_nothing(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    from retirement.errors import SourceError

    with pytest.raises((BackupError, SourceError)):
        _backup(keys, crm, tmp_path / "vault", table="no_such_table")
    assert not any((tmp_path / "vault").rglob("*")) or not any(
        p.is_file() for p in (tmp_path / "vault").rglob("*")
    )


def test_disk_full_mid_backup_leaves_no_partial_backup(crm: Path, tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the disk 'full' after 20 kB, mid-stream."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3] / "include")!r})
        from pathlib import Path
        from retirement.crypto.keys import KeyStore
        from retirement.sources.sql import SqlSource
        from retirement.errors import BackupError
        from retirement.vault.write import back_up
        keys = KeyStore(Path({str(tmp_path / "keys")!r}),
                        KeyStore.new_master_key(Path({str(tmp_path / "keys" / "master.key")!r})))
        recipient = keys.archive_key("demo", "erase").recipient
        signing = keys.signing_key()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        with SqlSource("crm", "sqlite:///{crm}") as source:
            try:
                back_up(source, "customers", qualified="crm.customers", kind="table", plan="demo",
                        disposition="erase", recipients=[recipient],
                        out_dir=Path({str(tmp_path / "vault")!r}),
                        signing_key=signing, created_at="x", key_columns=("id",))
            except BackupError as exc:
                print("BackupError", exc)
                sys.exit(3)
        sys.exit(0)
    """)
    with sqlite3.connect(crm) as conn:  # make the backup big enough to hit the limit
        conn.executemany(
            "INSERT INTO customers (name, note) VALUES (?, ?)",
            [(f"n{i}", os.urandom(1024).hex()) for i in range(2000)],
        )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "File too large" in done.stdout  # EFBIG, named
    assert "nothing was kept" in done.stdout
    vault = tmp_path / "vault"
    assert [p for p in vault.rglob("*") if p.is_file()] == []


def test_crypto_erase(keys: KeyStore, crm: Path, tmp_path: Path) -> None:
    result = _backup(keys, crm, tmp_path / "vault")
    _verify(keys, result.manifest_path)
    secret = keys.destroy("demo", "erase")
    assert not secret.exists()
    with pytest.raises(KeyStoreError, match="destroyed"):
        keys.identity("demo", "erase")
    with pytest.raises(KeyStoreError, match="destroyed"):
        keys.archive_key("demo", "erase")
    # The master key cannot bring it back: nothing is left to decrypt.
    leftovers = [p for p in (tmp_path / "keys" / "demo").iterdir() if p.suffix == ".age"]
    assert leftovers == []


def test_csv_records_keep_multiline_values() -> None:
    lines = [csv_line([1, "a\nb"]), csv_line([2, 'say "x"'])]
    physical = b"".join(lines).splitlines(keepends=True)
    assert list(csv_records(physical)) == lines
    with pytest.raises(IntegrityError, match="truncated"):
        list(csv_records([b'1,"open\n']))


def test_age_binary_present() -> None:
    assert shutil.which("age"), "age is required: apt-get install age (make test does it)"


@pytest.mark.parametrize("key", [("note",), ("name", "note")])
def test_key_order_verify_profiles_like_the_record_by_record_verify(
    keys: KeyStore, crm: Path, tmp_path: Path, key: tuple[str, ...]
) -> None:
    """Restore-verify in blocks (key-order digest) finds the same NULLs, key NULLs and key
    duplicates as the record-by-record reader (order-free sum) on quotes, newlines, empty
    strings and NULLs."""
    reports = []
    for method in (KEY_ORDER_METHOD, PLAINTEXT_METHOD, SUM_METHOD):
        with SqlSource("crm", f"sqlite:///{crm}") as source:
            result = back_up(
                source,
                "customers",
                qualified="crm.customers",
                kind="table",
                plan="demo",
                disposition="erase",
                recipients=[keys.archive_key("demo", "erase").recipient],
                out_dir=tmp_path / method,
                signing_key=keys.signing_key(),
                created_at=NOW,
                key_columns=key,
                row_digest_method=method,
            )
        reports.append(_verify(keys, result.manifest_path))
    blocks, plain, records = reports
    assert blocks.rows == plain.rows == records.rows == 500
    assert blocks.null_counts == plain.null_counts == records.null_counts
    assert blocks.null_counts[2] == 500 // 7  # note: NULL every 7th row, "" is not NULL
    assert (blocks.key_nulls, blocks.key_duplicates) == (records.key_nulls, records.key_duplicates)
    assert (plain.key_nulls, plain.key_duplicates) == (records.key_nulls, records.key_duplicates)
    assert plain.row_digest == plain.plaintext_sha256 != blocks.row_digest
    assert blocks.key_nulls > 0
    assert blocks.key_duplicates > 0 if key == ("note",) else blocks.key_duplicates == 0


def test_key_order_verify_catches_a_changed_record(
    keys: KeyStore, crm: Path, tmp_path: Path
) -> None:
    """A backup whose records differ from the manifest's digest fails restore-verify."""
    result = _backup(keys, crm, tmp_path / "vault")
    data = json.loads(result.manifest_path.read_bytes())
    data["fingerprint"]["row_digest"] = "0" * 64
    raw = (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    write_detached(result.manifest_path, raw, keys.signing_key())
    with pytest.raises(IntegrityError, match="row digest"):
        _verify(keys, result.manifest_path)


@pytest.mark.parametrize(
    ("keys_text", "duplicates"),
    [(["1", "2", "3", "-9223372036854775808"], 0), (["1", "2", "2", "3"], 1), (["7", "007"], 1)],
    ids=["unique", "a duplicate", "two spellings of 7"],
)
def test_integer_keys_are_compared_as_integers_and_never_hide_a_duplicate(
    keys_text: list[str], duplicates: int
) -> None:
    """Integer keys are checked as 64-bit integers: a duplicate is counted; two spellings of
    one integer (which a backup of an integer column never holds) count as a duplicate too,
    so verification can only fail on them, never pass a real duplicate."""
    import hashlib

    from retirement.vault.verify_blocks import header_bytes, profile_blocks

    body = "".join(f'{k},"v{i}"\n' for i, k in enumerate(keys_text)).encode()
    chunks = iter([header_bytes(["id", "v"]) + body])
    profile = profile_blocks(chunks, ["id", "v"], [0], hashlib.sha256(), [0], keep_keys=True)
    assert profile.rows == len(keys_text)
    assert profile.key_duplicates == duplicates
    assert profile.row_digest == hashlib.sha256(body).hexdigest()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60)
    | st.lists(st.integers(-3, 3), min_size=20, max_size=400),
    st.booleans(),
)
@example([1] * 40, True)  # one key, across every block
def test_ascending_integer_keys_are_checked_in_flat_memory(keys_: list[int], order: bool) -> None:
    """Integer keys in ascending order (what a key-order backup of an integer key holds) are
    compared with their neighbours, across blocks: the same duplicates as keeping every key.
    Keys out of order raise KeysOutOfOrder (nothing decided) unless every key is kept."""
    import hashlib

    from retirement.vault import verify_blocks
    from retirement.vault.verify_blocks import KeysOutOfOrder, header_bytes, profile_blocks

    keys_ = sorted(keys_) if order else keys_
    body = "".join(f'{k},"v{i}"\n' for i, k in enumerate(keys_)).encode()
    duplicates = len(keys_) - len(set(keys_))

    def profile(keep: bool) -> Any:
        parts = [body[i : i + 97] for i in range(0, len(body), 97)]
        chunks = iter([header_bytes(["id", "v"]), *parts])
        return profile_blocks(chunks, ["id", "v"], [0], hashlib.sha256(), [0], keep_keys=keep)

    old = verify_blocks.CHUNK
    verify_blocks.CHUNK = 256  # several pyarrow blocks: neighbours across a block's edge
    try:
        assert profile(keep=True).key_duplicates == duplicates
        if keys_ == sorted(keys_):
            assert profile(keep=False).key_duplicates == duplicates
        else:
            with pytest.raises(KeysOutOfOrder):
                profile(keep=False)
    finally:
        verify_blocks.CHUNK = old


def test_keys_out_of_order_are_verified_keeping_every_key(keys: KeyStore, tmp_path: Path) -> None:
    """A text key of numbers sorts as text ("10" before "9"): out of order as integers, so
    verification reads the backup again keeping every key, and passes."""
    db = tmp_path / "texts.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id TEXT PRIMARY KEY, note TEXT)")
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?)", [(str(i), f"n{i}") for i in range(1, 40)]
        )
    result = _backup(keys, db, tmp_path / "vault")
    assert result.manifest.fingerprint.row_digest_method == PLAINTEXT_METHOD
    report = _verify(keys, result.manifest_path)
    assert (report.rows, report.key_duplicates) == (39, 0)
