"""Every reproduction of issue 14 and every counterexample the hunt found, as a plain test.

Each runs one fixed scenario through the phases (``world.hunt``), asserts that no invariant
broke (nothing deleted that was not safely elsewhere, nothing certified that did not happen,
every refusal names its reason) and then what the case is about: which refusal, what stayed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.deletion_model.backends import File, Rule, Table
from tests.deletion_model.world import Fault, Scenario, World, hunt
from tests.servers.databases import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ROWS = tuple((f"v{i}",) for i in range(6))
KEYED = (("k0", "int"), ("val", "text"))


def _keyed(name: str = "people", n: int = 5, rule: Rule | None = None) -> Table:
    return Table(name, KEYED, ("k0",), tuple((i, f"v{i}") for i in range(n)), rule=rule)


def _refusals(world: World, phase: str = "delete") -> list[str]:
    return [s.error for s in world.log if s.what == phase and s.status == "failed"]


def _clean(world: World) -> World:
    assert not world.violations, "\n".join(world.violations)
    return world


@pytest.fixture
def pg() -> Iterator[str]:
    url = create_pg_database("reg")
    yield url
    drop_pg_database(url)


@pytest.fixture
def maria() -> Iterator[str]:
    url = create_mysql_database("reg")
    yield url
    drop_mysql_database(url)


# ---------------------------------------------------------------------- names


def test_a_hash_in_a_file_name_deletes_that_file_not_its_excluded_namesake(tmp_path: Path) -> None:
    """#1: `report#2024.txt` was taken for a sheet of `report`, and the excluded `report`
    (never backed up) was unlinked."""
    world = _clean(
        hunt(
            Scenario(
                "files",
                files=(File(("report",), "doc", excluded=True), File(("report#2024.txt",), "doc")),
            ),
            tmp_path,
        )
    )
    now = world.current()
    assert sum(now["report"].values()) == 1  # excluded: untouched
    assert not now["report#2024.txt"]  # the one in the plan: gone, and certified
    assert len(world.certified) == 1


def test_names_with_odd_characters_and_bytes_are_retired(tmp_path: Path) -> None:
    """A file name that is not UTF-8 crashed the ledger write without naming the file."""
    files = (File(("\udcff", "a#1.csv"), "csv", rows=3), File(("x y", "%41.txt"), "doc"))
    world = _clean(hunt(Scenario("files", files=files), tmp_path))
    assert not any(world.current().values())
    assert len(world.certified) == 2


# ---------------------------------------------------------------------- files


def test_a_workbook_is_kept_while_any_sheet_of_it_is_not_the_one_backed_up(tmp_path: Path) -> None:
    """#2: deleting sheet A unlinked the workbook though B had a new row and C was new."""
    book = File(("book.xlsx",), "xlsx", rows=2, sheets=("A", "B"))
    faults = (("before:delete", Fault("insert", 0)), ("before:delete", Fault("add_sheet", 0)))
    world = _clean(hunt(Scenario("files", files=(book,), faults=faults, retries=0), tmp_path))
    assert any("the file is not the one backed up" in e for e in _refusals(world))
    assert sum(world.current()["book.xlsx"].values()) == 6  # 2 + 2 + the new row + sheet C


def test_a_whole_workbook_goes_when_every_sheet_was_backed_up(tmp_path: Path) -> None:
    book = File(("b#1", "book.xlsx"), "xlsx", rows=2, sheets=("A", "B#1", "Sheet 3"))
    world = _clean(hunt(Scenario("files", files=(book,)), tmp_path))
    assert not world.current()["b#1/book.xlsx"]
    assert len(world.certified) == 3


def test_a_file_appended_to_after_a_failed_attempt_is_not_deleted(tmp_path: Path) -> None:
    """#3 (files): the retry skipped the 'unchanged' check of a resumed deletion."""
    files = (File(("a.csv",), "csv", rows=3), File(("b.csv",), "csv", rows=2))
    faults = (("retry:delete", Fault("insert", 1)),)  # b.csv grows between the attempts
    world = _clean(
        hunt(Scenario("files", files=files, faults=faults, retries=1, fail_before=1), tmp_path)
    )
    assert sum(world.current()["b.csv"].values()) == 4  # its 2 rows and 2 added: all there
    assert any("b.csv: the file is not the one backed up" in e for e in _refusals(world))


def test_a_folder_swapped_for_a_link_between_attempts_leads_nowhere(tmp_path: Path) -> None:
    """#3 (links): a folder replaced by a link to outside the root between two attempts."""
    files = (File(("a.csv",), "csv", rows=1), File(("docs", "note.txt"), "doc"))
    faults = (("retry:delete", Fault("symlink_swap", 0)),)
    world = _clean(
        hunt(Scenario("files", files=files, faults=faults, retries=1, fail_before=1), tmp_path)
    )
    assert sum(world.outside.values()) == 1  # the file out there is untouched
    assert any("symbolic link" in e for e in _refusals(world))


# ---------------------------------------------------------------------- proof


def test_an_application_write_after_a_link_swap_is_not_the_pipelines(tmp_path: Path) -> None:
    """Found by the long hunt (a harness bug, kept so the hunt stays honest): after a folder
    became a link out of the root, the hunt's own writes must not go through it."""
    files = (File(("a", "report"), "doc"), File(("report",), "doc", excluded=True))
    faults = (
        ("before:gate_transfer", Fault("symlink_swap", 0)),
        ("before:delete", Fault("insert", 0)),
    )
    world = _clean(hunt(Scenario("files", files=files, faults=faults, retries=0), tmp_path))
    assert sum(world.outside.values()) == 1
    assert sum(world.current()["report"].values()) == 1  # excluded: untouched


def test_a_removed_backup_stops_the_deletion(tmp_path: Path) -> None:
    """#4: the vault's .age files removed after gate_transfer; keyless tables still went."""
    scn = Scenario(
        "sqlite",
        tables=(Table("applog", (("val", "text"),), (), ROWS),),
        faults=(("before:delete", Fault("remove_backup", 0)),),
        retries=0,
    )
    world = _clean(hunt(scn, tmp_path))
    assert any("is gone since gate_backup verified it" in e for e in _refusals(world))
    assert sum(world.current()["applog"].values()) == 6


@pytest.mark.parametrize("rows", [0, 5])
def test_a_backup_removed_before_its_transfer_is_named(tmp_path: Path, rows: int) -> None:
    """Found by the hunt (postgres, an empty archived table): the vault's .age file removed
    before transfer failed it with a bare FileNotFoundError; now the refusal says which
    backup is gone and what to do, and nothing is deleted."""
    scn = Scenario(
        "sqlite",
        tables=(_keyed(n=rows, rule=Rule("archive", (), True)),),
        faults=(("before:transfer", Fault("remove_backup", 0)),),
        retries=0,
    )
    world = _clean(hunt(scn, tmp_path))
    assert any("is gone from the vault" in e for e in _refusals(world, "transfer"))
    assert sum(world.current()["people"].values()) == rows


def test_a_corrupted_backup_stops_the_deletion_before_any_row_goes(tmp_path: Path) -> None:
    """#4: 4 bytes flipped at 80% of a backup; 20,000 rows went before the decrypt error."""
    many = Table("people", KEYED, ("k0",), tuple((i, f"v{i}") for i in range(300)))
    scn = Scenario(
        "sqlite",
        tables=(many,),
        faults=(("before:delete", Fault("corrupt_backup", 0, 8)),),
        retries=0,
    )
    world = _clean(hunt(scn, tmp_path))
    assert any("was altered since gate_backup verified it" in e for e in _refusals(world))
    assert sum(world.current()["people"].values()) == 300


def test_a_hand_edited_ledger_deletes_nothing(tmp_path: Path) -> None:
    """#5: a row set to `delivered` with a fake receipt, the gates marked successful: 40
    rows went with no gate_backup and no gate_transfer."""
    faults = (
        ("before:gate_backup", Fault("mark_success")),
        ("before:gate_transfer", Fault("fake_delivered", 0)),
        ("before:gate_transfer", Fault("mark_success")),
    )
    world = _clean(hunt(Scenario("sqlite", tables=(_keyed(),), faults=faults, retries=0), tmp_path))
    assert sum(world.current()["people"].values()) == 5
    assert world.stopped == "request"
    assert any("datasets row of src.people" in e for e in _refusals(world, "request"))


def test_an_edited_approval_breaks_the_chain_and_deletes_nothing(tmp_path: Path) -> None:
    """#5: an edited deletion_approved event (chain broken) did not stop deletion."""
    faults = (("before:delete", Fault("edit_event", 0)),)
    world = _clean(hunt(Scenario("sqlite", tables=(_keyed(),), faults=faults, retries=0), tmp_path))
    assert sum(world.current()["people"].values()) == 5
    assert any("chain is broken" in e or "does not match its hash" in e for e in _refusals(world))


def test_a_delivered_copy_altered_before_the_deletion_stops_it(tmp_path: Path) -> None:
    """#7 without a gate re-run: the copy at the destination changed after gate_transfer."""
    faults = (("before:delete", Fault("alter_copy", 0)),)
    table = _keyed(rule=Rule("archive"))
    world = _clean(hunt(Scenario("sqlite", tables=(table,), faults=faults, retries=0), tmp_path))
    assert any("its delivered copy no longer verifies" in e for e in _refusals(world))
    assert sum(world.current()["people"].values()) == 5


def test_an_event_edited_before_the_request_stops_the_deletion(tmp_path: Path) -> None:
    """Found by the long hunt: an event older than the deletion request edited while the
    approval waited; the delete tasks verified the chain only from the request on."""
    table = Table(
        "people_1",
        KEYED,
        ("k0",),
        ((-20, "a"), (-13, "A"), (-6, "a "), (1, "a")),
        rule=Rule("erase"),
    )
    faults = (("before:approve", Fault("edit_event", 3, 6)),)
    world = _clean(hunt(Scenario("sqlite", tables=(table,), faults=faults, retries=1), tmp_path))
    assert sum(world.current()["people_1"].values()) == 4
    assert any("nothing is deleted on a broken chain" in e for e in _refusals(world))


def test_a_gate_that_fails_after_the_request_voids_the_approval(tmp_path: Path) -> None:
    """#7: the archive copy altered, gate_transfer re-run and failed, the approval then
    answered: the dataset was deleted with only the vault copy intact."""
    faults = (
        ("before:approve", Fault("alter_copy", 0)),
        ("before:approve", Fault("rerun", 0, 3)),  # gate_transfer
    )
    table = _keyed(rule=Rule("hand_over"))
    world = _clean(hunt(Scenario("sqlite", tables=(table,), faults=faults, retries=0), tmp_path))
    assert any(
        "gate_transfer failed" in e and "approval no longer holds" in e for e in _refusals(world)
    )
    assert sum(world.current()["people"].values()) == 5


def test_a_plan_edited_during_the_run_changes_nothing_in_it(tmp_path: Path) -> None:
    """The plan file is edited while the run goes on (the successor dropped: hand_over
    becomes a destroy; exclusions lifted; tables retired): the run keeps the checked plan,
    so the copy for the successor is still made and verified before anything is deleted."""
    for variant in range(3):
        table = _keyed(rule=Rule("hand_over", drop_table=False))
        faults = (("before:transfer", Fault("edit_plan", 0, variant)),)
        world = _clean(
            hunt(Scenario("sqlite", tables=(table,), faults=faults), tmp_path / str(variant))
        )
        assert not world.current()["people"]  # deleted, as the checked plan said
        assert len(world.certified) == 1


# ---------------------------------------------------------------------- certificates


def test_sqlite_datetime_and_null_able_keys_are_certified_only_when_gone(tmp_path: Path) -> None:
    """False certificates: a DATETIME primary key (0 of 2 deleted, certified) and a composite
    key with a NULL part (2 of 4 left, certificate said 4). Found by the hunt itself."""
    stamps = Table(
        "people_2",
        (("k0", "sqlite_datetime"), ("val", "text")),
        ("k0",),
        (("2024-01-01 08:00:00", "a"), ("2024-01-01 09:00:00", "A")),
    )
    nulls = Table(
        "pairs",
        (("k0", "int"), ("k1", "text"), ("val", "text")),
        ("k0", "k1"),
        ((1, "a", "x"), (2, None, "y"), (3, "c", "z"), (4, None, "w")),
    )
    world = _clean(hunt(Scenario("sqlite", tables=(stamps, nulls)), tmp_path))
    assert not any(world.current().values())
    assert len(world.certified) == 2


# ---------------------------------------------------------------------- servers


@pytest.mark.integration
def test_postgres_keyless_table_killed_mid_delete_then_rows_added(pg: str, tmp_path: Path) -> None:
    """#3: the backend terminated during DELETE, 3 rows inserted, Airflow's retry: the
    retry deleted 1,000,003 rows and certified 1,000,000 as unchanged."""
    scn = Scenario(
        "postgres",
        tables=(Table("applog", (("val", "text"),), (), ROWS),),
        faults=tuple(("retry:delete", Fault("insert", 0, 2 * i)) for i in range(3)),
        retries=1,
        block_kill=0,
    )
    world = _clean(hunt(scn, tmp_path, pg))
    added = [s for s in world.log if s.what == "fault:insert" and s.status == "done"]
    assert added
    assert sum(world.current()["applog"].values()) == 6 + len(added)  # none of them went
    assert any("are not rows of the backup" in e for e in _refusals(world))


POSTGRES_KEYS = ("uuid", "bytes", "bool", "timestamptz", "numeric", "date", "time", "float", "char")


@pytest.mark.integration
@pytest.mark.parametrize("logical", POSTGRES_KEYS)
def test_postgres_key_types_are_backed_up_deleted_and_counted(
    logical: str, pg: str, tmp_path: Path
) -> None:
    """Crashes after `deleting`: min(uuid), `timestamptz = character varying`, ... ."""
    n = 2 if logical == "bool" else 4
    table = Table(
        "t",
        (("k0", logical), ("val", "text")),
        ("k0",),
        tuple((_v(logical, i), "x") for i in range(n)),
    )
    world = _clean(hunt(Scenario("postgres", tables=(table,)), tmp_path, pg))
    assert not world.current()["t"]
    assert len(world.certified) == 1


@pytest.mark.integration
def test_postgres_composite_key_with_a_repeated_first_column(pg: str, tmp_path: Path) -> None:
    """(a, b) with a repeated `a` failed gate_backup as "not unique" (only `a` was checked),
    and composite deletion crashed (`unnest(unknown)`)."""
    table = Table(
        "pairs",
        (("k0", "int"), ("k1", "timestamptz"), ("val", "text")),
        ("k0", "k1"),
        tuple((i // 2, _v("timestamptz", i), "x") for i in range(6)),
    )
    world = _clean(hunt(Scenario("postgres", tables=(table,)), tmp_path, pg))
    assert not world.current()["pairs"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "logical", ["bytes", "numeric", "timestamp", "date", "text", "float", "float32"]
)
def test_mariadb_key_types_are_backed_up_deleted_and_counted(
    logical: str, maria: str, tmp_path: Path
) -> None:
    table = Table(
        "t",
        (("k0", logical), ("val", "text")),
        ("k0",),
        tuple((_v(logical, i), "x") for i in range(4)),
    )
    world = _clean(hunt(Scenario("mysql", tables=(table,)), tmp_path, maria))
    assert not world.current()["t"]
    assert len(world.certified) == 1
    inventoried = world.p.ledger.dataset_state("hunt", "src.t").detail["key"]
    if logical == "float32":  # a FLOAT key cannot find its rows: the table goes whole
        assert inventoried["columns"] == []
        assert "single-precision" in inventoried["problem"]
    else:
        assert inventoried == {"columns": ["k0"], "planned": False}


def _v(logical: str, n: int) -> object:
    from tests.deletion_model.backends import value_of

    return value_of(logical, n)


def test_regressions_module_counts(tmp_path: Path) -> None:
    """The invariants themselves can fail: a world whose source lost a row with no backup
    reports it (so a green regression test means something)."""
    world = World(Scenario("sqlite", tables=(_keyed(),)), tmp_path)
    try:
        assert world.db is not None
        world.db.remove(world.tables[0], "k00001")  # behind the model's back: as the pipeline would
        world.observe(0)
    finally:
        world.close()
    assert any(
        "I1 people: k00001 was deleted but is in no intact backup" in v for v in world.violations
    )
    assert Counter(world.removed) == Counter({"k00001": 1})
