"""A batch of a single-column-key table deleted by its key range (one range scan, two key
values), accepted only when the range's rows are the batch's backed-up lines byte for byte;
a range that holds any other row is rolled back to its savepoint and the batch goes by its
keys. Real PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import sqlalchemy as sa

from retirement.crypto.keys import KeyStore
from retirement.deletion import keyed
from retirement.deletion.tables import delete_table_rows
from retirement.sources.sql import SqlSource
from tests.support.backups import table_backup

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

ROWS = 1_000  # odd keys 1..1999, in batches of 100


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))


@pytest.fixture
def ranges(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each range attempt returned (None: rolled back, the batch went by its keys)."""
    seen: list[int | None] = []
    real = keyed._range_batch  # noqa: SLF001

    def spy(*args: Any) -> int | None:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(keyed, "_range_batch", spy)
    monkeypatch.setattr(keyed, "BATCH", 100)
    return seen


def _run(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


def _note(i: int) -> str:
    return "NULL" if i % 7 == 0 else "'a " + str(i) + ', "q"' + "'"


def _fill(url: str) -> None:
    _run(url, "CREATE TABLE people (id bigint PRIMARY KEY, name varchar(40), note text)")
    values = ", ".join(f"({2 * i + 1}, 'p{i}', {_note(i)})" for i in range(ROWS))
    _run(url, f"INSERT INTO people VALUES {values}")


@pytest.mark.parametrize("database", ["pg", "my"])
def test_a_row_added_inside_a_batch_range_is_never_deleted(
    pg_url: str, mysql_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any], database: str
) -> None:
    """Backed up: the odd keys. Added since: key 500, between two backed-up keys of batch 3.
    Batch 3's range returns 51 rows, not its 50 lines: rolled back, deleted by its keys;
    every other batch by its range; row 500 stays."""
    url = pg_url if database == "pg" else mysql_url
    _fill(url)
    with SqlSource(database, url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(url, "INSERT INTO people VALUES (500, 'after the backup', NULL)")
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
        assert (result.deleted, result.remaining) == (ROWS, 1)
        assert ranges == [100, 100, None] + [100] * 7
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, name FROM people").all() == [
            (500, "after the backup")
        ]
    engine.dispose()


def test_ranges_are_given_up_after_three_that_held_other_rows(
    pg_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any]
) -> None:
    """New rows between the backed-up keys everywhere: three ranges are tried, then the
    batches go by their keys (a range that fails costs a delete and its rollback)."""
    _fill(pg_url)
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO people SELECT 2 * i, 'new', NULL FROM generate_series(1, 999) i"
            )
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (ROWS, 999)
    assert ranges == [None, None, None]


@pytest.mark.parametrize(
    "setup",
    [
        "ALTER TABLE people ENGINE=MyISAM",
        "ALTER TABLE people ENGINE=Aria",
        "CREATE TRIGGER people_gone AFTER DELETE ON people FOR EACH ROW SET @gone = OLD.id",
    ],
    ids=["myisam", "aria", "trigger"],
)
def test_mariadb_tables_a_savepoint_cannot_restore_go_by_their_keys(
    mysql_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any], setup: str
) -> None:
    """MyISAM and Aria ignore a rollback to a savepoint, and a trigger may write to such a
    table: a range that deleted a row it should not have could not be undone, so such tables
    never try one."""
    _fill(mysql_url)
    _run(mysql_url, setup)
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(mysql_url, "INSERT INTO people VALUES (500, 'after the backup', NULL)")
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (ROWS, 1)
    assert ranges == []


def test_postgres_a_table_with_a_trigger_never_tries_a_range(
    pg_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any]
) -> None:
    """A range runs DELETE triggers for rows it then gives back; a trigger may act outside
    the transaction (dblink, a mail queue), where a rollback cannot reach."""
    _fill(pg_url)
    _run(
        pg_url,
        "CREATE TABLE gone (id bigint); CREATE FUNCTION note_gone() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO gone VALUES (OLD.id); RETURN OLD; END $$; "
        "CREATE TRIGGER noted AFTER DELETE ON people FOR EACH ROW EXECUTE FUNCTION note_gone()",
    )
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(pg_url, "INSERT INTO people VALUES (500, 'after the backup', NULL)")
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (ROWS, 1)
    assert ranges == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM gone WHERE id = 500").fetchone() == (0,)


def test_postgres_a_kept_row_that_refuses_deletion_sends_its_batch_by_keys(
    pg_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any]
) -> None:
    """Row 500, added since the backup, is referenced by another table: the range's DELETE
    fails on it, rolls back to its savepoint, and the batch goes by its keys."""
    _fill(pg_url)
    with SqlSource("pg", pg_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(pg_url, "INSERT INTO people VALUES (500, 'after the backup', NULL)")
        _run(pg_url, "CREATE TABLE orders (id int PRIMARY KEY, person bigint REFERENCES people)")
        _run(pg_url, "INSERT INTO orders VALUES (1, 500)")
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (ROWS, 1)
    assert ranges == [100, 100, None] + [100] * 7


def test_mariadb_a_table_changed_to_myisam_during_the_run_stops_trying_ranges(
    mysql_url: str, keys: KeyStore, tmp_path: Path, ranges: list[Any]
) -> None:
    """Whether a range may be tried is read in each batch's transaction, not once."""
    _fill(mysql_url)
    with SqlSource("my", mysql_url) as source:
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(mysql_url, "INSERT INTO people VALUES (5000, 'after the backup', NULL)")

        def between_batches(_rows: int) -> None:
            if len(ranges) == 1:
                _run(mysql_url, "ALTER TABLE people ENGINE=MyISAM")

        result = delete_table_rows(
            source,
            "people",
            manifest,
            cipher,
            [keys.identity("demo", "erase")],
            on_rows=between_batches,
        )
    assert (result.deleted, result.remaining) == (ROWS, 1)
    assert ranges == [100]


def test_mariadb_a_row_inserted_between_the_locked_read_and_the_delete_stays(
    mysql_url: str,
    keys: KeyStore,
    tmp_path: Path,
    ranges: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under READ COMMITTED, InnoDB takes no gap locks: a row can be inserted inside batch
    3's range after its rows were locked and compared and before its ``DELETE``, which then
    removes one row more than it compared. That count rolls the range back, and the batch
    goes by its keys: the new row stays. (Row 5000, added after the backup, keeps the table
    from being emptied at once.)"""
    from retirement.sources.mysql_export import TableLines

    _fill(mysql_url)
    real = TableLines.locked
    calls: list[int] = []

    def then_insert(self: TableLines, *args: Any) -> bytes:
        lines = real(self, *args)
        calls.append(1)
        if len(calls) == 3:  # batch 3's range: keys 401..599
            _run(mysql_url, "INSERT INTO people VALUES (500, 'between read and delete', NULL)")
        return lines

    monkeypatch.setattr(TableLines, "locked", then_insert)
    with SqlSource("my", mysql_url) as source:
        sa.event.listen(
            source._engine,  # noqa: SLF001
            "connect",
            lambda dbapi, _record: dbapi.cursor().execute(
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
            ),
        )
        manifest, cipher = table_backup(source, "people", keys, tmp_path / "v", ("id",))
        _run(mysql_url, "INSERT INTO people VALUES (5000, 'after the backup', NULL)")
        result = delete_table_rows(
            source, "people", manifest, cipher, [keys.identity("demo", "erase")]
        )
    assert (result.deleted, result.remaining) == (ROWS, 2)
    assert ranges == [100, 100, None] + [100] * 7
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, name FROM people ORDER BY id").all() == [
            (500, "between read and delete"),
            (5000, "after the backup"),
        ]
    engine.dispose()
