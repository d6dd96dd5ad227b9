"""`retirement restore` must not duplicate rows, nor leave plaintext readable by others.

A second ``--to-db`` restore into the table it already filled is refused before any row goes
in (SQLite and the real PostgreSQL); an existing empty table is still loaded. ``--to DIR``
creates the CSV with mode 0600 from the first byte, a created DIR with 0700, and never
overwrites a file already there.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from retirement.cli.root import app
from tests.support.backups import backed_up

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
REFUSED = "restore into an empty table, or name another with --table"
TEXT = "name TEXT, id_card TEXT, mobile TEXT, email TEXT, address TEXT, created_at TEXT"


def _keys(tmp_path: Path, master: Path) -> list[str]:
    return ["--key-store", str(tmp_path / "keys"), "--master-key-file", str(master)]


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- --to-db: no duplicates


def _restore_twice_is_refused(tmp_path: Path, url: str) -> None:
    result, master = backed_up(tmp_path)
    argv = ["restore", str(result.manifest_path), "--to-db", url, *_keys(tmp_path, master)]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert "✓ restored crm.customers: 40 rows → table customers" in first.output

    again = runner.invoke(app, argv)
    assert again.exit_code == 1, again.output
    assert again.output.startswith("✗ ")
    message = " ".join(again.output.split())  # the console wraps long lines
    assert "table customers already holds 40 rows" in message
    assert REFUSED in message
    assert _count(url, "customers") == 40  # nothing was added


def test_restore_to_sqlite_twice_is_refused(tmp_path: Path) -> None:
    _restore_twice_is_refused(tmp_path, f"sqlite:///{tmp_path / 'restored.sqlite'}")


@pytest.mark.integration
def test_restore_to_postgres_twice_is_refused(tmp_path: Path, pg_url: str) -> None:
    _restore_twice_is_refused(tmp_path, pg_url)


def test_restore_to_sqlite_loads_an_existing_empty_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE people (id INTEGER, {TEXT})"))
    engine.dispose()
    result, master = backed_up(tmp_path)
    done = runner.invoke(
        app,
        [
            "restore",
            str(result.manifest_path),
            "--to-db",
            url,
            "--table",
            "people",
            *_keys(tmp_path, master),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "40 rows → table people" in done.output
    assert _count(url, "people") == 40


@pytest.mark.integration
def test_restore_to_postgres_loads_an_existing_empty_typed_table(
    tmp_path: Path, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE people (id integer PRIMARY KEY, {TEXT})")
    result, master = backed_up(tmp_path)
    argv = [
        "restore",
        str(result.manifest_path),
        "--to-db",
        pg_url,
        "--table",
        "people",
        *_keys(tmp_path, master),
    ]
    done = runner.invoke(app, argv)
    assert done.exit_code == 0, done.output
    with psycopg.connect(pg_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM people ORDER BY id")]
    assert len(ids) == 40
    assert all(isinstance(i, int) for i in ids)  # loaded into the typed columns
    refused = runner.invoke(app, argv)
    assert refused.exit_code == 1
    assert "table people already holds 40 rows" in " ".join(refused.output.split())


@pytest.mark.integration
def test_restore_to_postgres_names_a_value_the_typed_table_rejects(
    tmp_path: Path, pg_url: str
) -> None:
    """COPY runs on psycopg's own connection: its error is a ✗ line, not a traceback."""
    narrow = TEXT.replace("name TEXT", "name varchar(2)")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE people (id integer, {narrow})")
    result, master = backed_up(tmp_path)
    done = runner.invoke(
        app,
        [
            "restore",
            str(result.manifest_path),
            "--to-db",
            pg_url,
            "--table",
            "people",
            *_keys(tmp_path, master),
        ],
    )
    assert done.exit_code == 1, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    message = " ".join(done.output.split())
    assert message.startswith("✗ crm.customers: loading into people failed, nothing was restored")
    assert "value too long" in message
    assert _count(pg_url, "people") == 0


def _library_args(tmp_path: Path) -> tuple:
    """(manifest, public key, identities) for calling restore_to_db directly."""
    import pyrage

    from retirement.crypto.keys import load_public_key

    result, _master = backed_up(tmp_path)
    pub = load_public_key((tmp_path / "keys" / "signing.pub.pem").read_bytes())
    secret = (tmp_path / "successor.key").read_text().splitlines()[-1]
    return result.manifest_path, pub, [pyrage.x25519.Identity.from_str(secret)]


@pytest.mark.integration
def test_restore_to_postgres_waits_for_a_concurrent_writer_then_refuses(
    tmp_path: Path, pg_url: str
) -> None:
    """The emptiness check and the load hold a lock: a row another transaction is still
    writing is seen (after it commits), not loaded around."""
    import threading

    from retirement.errors import RestoreError
    from retirement.vault.restore_db import restore_to_db

    manifest, pub, ids = _library_args(tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE people (id integer, {TEXT})")
    outcome: list[object] = []

    def restore() -> None:
        try:
            outcome.append(restore_to_db(manifest, pg_url, pub, ids, table="people"))
        except Exception as exc:  # checked below
            outcome.append(exc)

    with psycopg.connect(pg_url) as writer:
        writer.execute("INSERT INTO people (id, name) VALUES (0, 'written meanwhile')")
        worker = threading.Thread(target=restore)
        worker.start()
        worker.join(1.0)
        assert worker.is_alive()  # waiting for the writer's transaction
        writer.commit()
    worker.join(60)
    (result,) = outcome
    assert isinstance(result, RestoreError), result
    assert "table people already holds 1 row;" in str(result)
    assert _count(pg_url, "people") == 1


def test_restore_to_db_library_refuses_a_filled_table(tmp_path: Path) -> None:
    """The same check in restore_to_db itself (the DAGs and scripts call it directly)."""
    from retirement.errors import RestoreError
    from retirement.vault.restore_db import restore_to_db

    manifest, pub, ids = _library_args(tmp_path)
    url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE t (id TEXT, {TEXT})"))
        conn.execute(sa.text("INSERT INTO t (id, name) VALUES ('1', 'x'), ('2', 'y')"))
    engine.dispose()
    with pytest.raises(RestoreError, match=r"table t already holds 2 rows.*--table"):
        restore_to_db(manifest, url, pub, ids, table="t")
    assert _count(url, "t") == 2


# ---------------------------------------------------------------- --to DIR: private, no clobber


def _restore_to(tmp_path: Path, master: Path, manifest: Path, out: Path):
    return runner.invoke(
        app, ["restore", str(manifest), "--to", str(out), *_keys(tmp_path, master)]
    )


def test_restore_to_dir_writes_mode_0600_into_a_0700_dir(tmp_path: Path) -> None:
    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    old = os.umask(0o022)  # the usual umask, which gave 0644 and 0755
    try:
        done = _restore_to(tmp_path, master, result.manifest_path, out)
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    target = out / "crm.customers.csv"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert list(out.iterdir()) == [target]  # no partial file left behind
    line = " ".join(done.output.split())
    assert line == (
        f"✓ restored crm.customers: 40 rows → {target} "
        "(mode 0600: plaintext customer data, delete it when done)"
    )


def test_restore_to_dir_never_makes_the_file_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is opened with 0600: no chmod afterwards, so no moment it is world-readable."""
    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    out.mkdir()
    calls: list[tuple] = []
    real_chmod = os.chmod

    def chmod(*args: object, **kwargs: object) -> None:
        calls.append(args)
        real_chmod(*args, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fchmod", lambda *a: calls.append(a))
    old = os.umask(0o000)  # even with no umask at all
    try:
        done = _restore_to(tmp_path, master, result.manifest_path, out)
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(os.stat(out / "crm.customers.csv").st_mode) == 0o600
    assert calls == []


def test_restore_to_dir_refuses_to_overwrite_a_file(tmp_path: Path) -> None:
    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    out.mkdir()
    existing = out / "crm.customers.csv"
    existing.write_text("someone's edited copy\n")
    done = _restore_to(tmp_path, master, result.manifest_path, out)
    assert done.exit_code == 1
    message = " ".join(done.output.split())
    assert message.startswith("✗ ")
    assert f"{existing} already exists" in message
    assert existing.read_text() == "someone's edited copy\n"
    assert sorted(p.name for p in out.iterdir()) == ["crm.customers.csv"]


def test_restore_to_dir_twice_refuses_the_second(tmp_path: Path) -> None:
    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    assert _restore_to(tmp_path, master, result.manifest_path, out).exit_code == 0
    first = (out / "crm.customers.csv").read_bytes()
    again = _restore_to(tmp_path, master, result.manifest_path, out)
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert (out / "crm.customers.csv").read_bytes() == first


def test_restore_to_dir_leaves_a_stale_partial_file_alone(tmp_path: Path) -> None:
    """A partial file from an interrupted restore (or one still running) is named, not reused
    nor deleted: O_EXCL never opens a file it did not create."""
    result, master = backed_up(tmp_path)
    out = tmp_path / "restored"
    out.mkdir()
    stale = out / ".crm.customers.csv.partial"
    stale.write_text("half\n")
    done = _restore_to(tmp_path, master, result.manifest_path, out)
    assert done.exit_code == 1
    assert f"{stale} already exists" in " ".join(done.output.split())
    assert stale.read_text() == "half\n"
    assert not (out / "crm.customers.csv").exists()
