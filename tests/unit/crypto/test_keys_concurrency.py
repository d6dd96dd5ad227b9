"""Many processes asking the key store for the same new key at once all get one key
(found as a bug under a running Airflow: parallel backups overwrote each other's archive
identity and left backups nobody could decrypt)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pyrage

from retirement.crypto.keys import KeyStore

WORKERS = 8


def _ask(root: str, master: str, barrier, out) -> None:
    store = KeyStore(Path(root), master)
    barrier.wait()
    recipient = store.archive_key("demo", "hand_over").recipient
    public = store.public_signing_key_pem()
    out.put((recipient, public))


def test_concurrent_first_use_yields_one_archive_key_and_one_signing_key(tmp_path: Path) -> None:
    master = KeyStore.new_master_key(tmp_path / "master.key")
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_ask, args=(str(tmp_path / "keys"), master, barrier, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    answers = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len({r for r, _ in answers}) == 1
    assert len({pub for _, pub in answers}) == 1
    store = KeyStore(tmp_path / "keys", master)
    sealed = pyrage.encrypt(b"archive", [pyrage.x25519.Recipient.from_str(answers[0][0])])
    assert pyrage.decrypt(sealed, [store.identity("demo", "hand_over")]) == b"archive"
    assert not list((tmp_path / "keys").rglob("*.tmp"))
