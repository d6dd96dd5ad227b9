"""PostgreSQL: a batch deleted by key range without reading its rows back, because each row
it deletes is a row version older than the check that found the table equal to its backup
(``deletion.predating``). Every way a row can differ from its backup after that check (an
update, one inside a subtransaction begun before the check, a table swapped in by rename, a
child table attached, a row added inside a range) must keep the batch from going that way:
the changed data stays and the byte-compared ways refuse it. Real PostgreSQL."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from retirement.crypto.keys import KeyStore
from retirement.deletion import keyed
from retirement.deletion.tables import check_unchanged, delete_table_rows
from retirement.errors import DeletionRefused
from retirement.sources.sql import SqlSource
from tests.support.backups import table_backup

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration

ROWS = 1_000  # odd keys 1..1999, in batches of 100
_COLUMNS = "id bigint PRIMARY KEY, name varchar(40), note text"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))


@pytest.fixture
def predated(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each batch's try by age returned (None: rolled back, it went the other ways)."""
    seen: list[int | None] = []
    real = keyed._predating  # noqa: SLF001

    def spy(*args: Any) -> int | None:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(keyed, "_predating", spy)
    monkeypatch.setattr(keyed, "BATCH", 100)
    monkeypatch.setattr(keyed, "PREDATING_BATCH", 100)
    return seen


def _sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _fill(url: str, table: str = "people", note: str = "a") -> None:
    _sql(
        url,
        f"CREATE TABLE {table} ({_COLUMNS})",
        f"INSERT INTO {table} SELECT 2 * i + 1, 'p' || i, '{note} ' || i || ', \"q\"' "
        f"FROM generate_series(0, {ROWS - 1}) i",
    )
    _settle(url)


def _settle(url: str) -> None:
    """Wait until every transaction of the cluster that began before now has ended (other
    tests' run beside this one): until then the horizon lies below these rows, and they would
    rightly go by the byte comparison instead."""
    with psycopg.connect(url, autocommit=True) as conn:
        now = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            low = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            if low.fetchone() > now:
                return
            time.sleep(0.05)
    pytest.fail("a transaction of the cluster stayed open for a minute")


def _delete_after_check(
    url: str, keys: KeyStore, tmp_path: Path, change: Callable[[], None]
) -> Any:
    """Back up ``people``, make deletion's first-attempt check, ``change`` the source, then
    delete with the check's horizon: the result, or the refusal."""
    with SqlSource("pg", url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        horizon = check_unchanged(source, "people", "table", manifest)
        assert horizon is not None
        change()
        try:
            return delete_table_rows(
                source,
                "people",
                manifest,
                cipher,
                [keys.identity("demo", "erase")],
                horizon=horizon,
            )
        except DeletionRefused as exc:
            return exc


def test_rows_older_than_the_check_go_by_range_without_coming_back(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """Rows added after the check past the backed-up keys keep the table from being emptied
    at once; every batch's range holds only rows older than the check."""
    _fill(pg_url)
    add = "INSERT INTO people SELECT i, 'new', NULL FROM generate_series(5000, 5099) i"
    result = _delete_after_check(pg_url, keys, tmp_path, lambda: _sql(pg_url, add))
    assert (result.deleted, result.remaining) == (ROWS, 100)
    assert predated == [100] * 10
    assert f"for {ROWS} of them, deleted by key range as row versions older" in result.technique


def test_a_row_changed_after_the_check_is_never_deleted(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """Row 501 (batch 3) changed after the check: batches 1 and 2 go by age, batch 3 is
    refused by the byte comparison and rolled back, and the changed row stays."""
    _fill(pg_url)
    change = "UPDATE people SET note = 'changed after the check' WHERE id = 501"
    refused = _delete_after_check(pg_url, keys, tmp_path, lambda: _sql(pg_url, change))
    assert isinstance(refused, DeletionRefused), refused
    assert "changed at the source" in str(refused)
    assert predated == [100, 100, None]
    assert _rows(pg_url, "SELECT note FROM people WHERE id = 501") == [("changed after the check",)]
    assert _rows(pg_url, "SELECT count(*) FROM people") == [(ROWS - 200,)]


def test_a_row_changed_in_a_subtransaction_begun_before_the_check_is_never_deleted(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """The change is made inside a savepoint of a transaction that was running when the
    check's horizon was taken and commits after the check: its row version's ``xmin`` is the
    subtransaction's id, which ``pg_visible_in_snapshot`` would call visible; the horizon
    (an id below every transaction then running, subtransactions included) does not."""
    _fill(pg_url)
    writer = psycopg.connect(pg_url)
    try:
        writer.execute("SAVEPOINT inner_change")
        writer.execute("UPDATE people SET note = 'changed in a subtransaction' WHERE id = 501")
        writer.execute("RELEASE SAVEPOINT inner_change")
        refused = _delete_after_check(pg_url, keys, tmp_path, writer.commit)
    finally:
        writer.close()
    assert isinstance(refused, DeletionRefused), refused
    assert predated == [100, 100, None]
    assert _rows(pg_url, "SELECT note FROM people WHERE id = 501") == [
        ("changed in a subtransaction",)
    ]


def test_a_table_renamed_into_place_after_the_check_is_never_deleted(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """A table of the same shape and keys but other values, older than the check, swapped in
    by rename after it: its rows predate the horizon, but its catalog row does not."""
    _fill(pg_url)
    _fill(pg_url, "decoy", note="other")
    swap = (
        "ALTER TABLE people RENAME TO people_checked",
        "ALTER TABLE decoy RENAME TO people",
    )
    refused = _delete_after_check(pg_url, keys, tmp_path, lambda: _sql(pg_url, *swap))
    assert isinstance(refused, DeletionRefused), refused
    assert predated == [None]
    assert _rows(pg_url, "SELECT count(*) FROM people WHERE note LIKE 'other%'") == [(ROWS,)]
    assert _rows(pg_url, "SELECT count(*) FROM people_checked") == [(ROWS,)]


def test_rows_of_a_child_table_attached_after_the_check_are_never_deleted(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """Row 5 deleted by the application after the check, and a table older than the check
    holding another row 5 attached as a child: a range over the parent and its children
    would find the batch's count again with a row that is not in the backup."""
    _fill(pg_url)
    _sql(
        pg_url,
        "CREATE TABLE orphan (id bigint NOT NULL, name varchar(40), note text)",
        "INSERT INTO orphan VALUES (5, 'not backed up', 'kept')",
    )
    change = ("DELETE FROM people WHERE id = 5", "ALTER TABLE orphan INHERIT people")
    result = _delete_after_check(pg_url, keys, tmp_path, lambda: _sql(pg_url, *change))
    assert _rows(pg_url, "SELECT id, note FROM orphan") == [(5, "kept")]
    assert predated[0] is None
    assert isinstance(result, DeletionRefused), result


def test_a_row_added_inside_a_range_after_the_check_is_never_deleted(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    _fill(pg_url)
    add = "INSERT INTO people VALUES (500, 'after the check', NULL)"
    result = _delete_after_check(pg_url, keys, tmp_path, lambda: _sql(pg_url, add))
    assert (result.deleted, result.remaining) == (ROWS, 1)
    assert predated == [100, 100, None] + [100] * 7
    assert _rows(pg_url, "SELECT id, name FROM people") == [(500, "after the check")]


def test_without_the_checks_horizon_no_batch_goes_by_age(
    pg_url: str, keys: KeyStore, tmp_path: Path, predated: list[int | None]
) -> None:
    """A retried attempt has no horizon (it is held in memory only): every batch is compared."""
    _fill(pg_url)
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, predated) == (ROWS, [])
    assert "older than" not in result.technique
