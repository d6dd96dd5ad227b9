"""Smaller guarantees around deletion (issue 14, items 4, 7 and 8): names escaped for the
approver, inventory checks against the plan, identifiers masked in refusals and SQL errors,
nothing half-written when the vault's disk is full."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from retirement.errors import DeletionRefused, GateFailed
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from retirement.sources.sql import SqlSource
from tests.support.demo import NOW, PLAN, DemoRun


def _plan_with(tmp_path: Path, extra: str, source_extra: str = "") -> str:
    text = Path(PLAN).read_text()
    text = text.replace(
        "    connection: demo_crm ", f"    connection: demo_crm\n{source_extra}    #", 1
    )
    path = tmp_path / "plan.yaml"
    path.write_text(text.replace("datasets:\n", "datasets:\n" + extra, 1))
    return str(path)


def _inventoried(tmp_path: Path, plan: str) -> DemoRun:
    """The demo CRM, checked and inventoried as run "r" of ``plan`` (not gated)."""
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    demo = DemoRun(tmp_path, ledger, keys, tmp_path / "src" / "crm.sqlite", plan=plan)
    check_plan(demo.ctx())
    inventory_source(demo.ctx(), "crm")
    return demo


def test_a_rule_naming_a_missing_table_fails_the_inventory_gate_naming_it(tmp_path: Path) -> None:
    """A typo (`crm.invoice`) used to send crm.invoices to the disposition of its class."""
    from retirement.demo import generate

    generate(tmp_path / "src", customers=10)
    plan = _plan_with(tmp_path, "  - dataset: crm.invoice\n    disposition: erase\n")
    demo = _inventoried(tmp_path, plan)
    with pytest.raises(
        GateFailed,
        match=r"crm\.invoice is no dataset of the inventory \(did you mean crm\.invoices\?\)",
    ):
        gate_inventory(demo.ctx())
    assert demo.ledger.events_of("r", ("gate_failed",))


def test_a_plan_key_that_is_not_unique_fails_the_inventory_gate(tmp_path: Path) -> None:
    from retirement.demo import generate

    generate(tmp_path / "src", customers=10)
    plan = _plan_with(
        tmp_path, "  - dataset: crm.orders\n    disposition: erase\n    key: [customer_id]\n"
    )
    demo = _inventoried(tmp_path, plan)
    with pytest.raises(
        GateFailed,
        match=r"crm\.orders: the plan's key \(customer_id\) cannot be used: .*not unique",
    ):
        gate_inventory(demo.ctx())


def test_an_include_pattern_that_matches_nothing_is_a_warning_everywhere(tmp_path: Path) -> None:
    from retirement.demo import generate

    generate(tmp_path / "src", customers=10)
    plan = _plan_with(tmp_path, "", source_extra='    include: ["custmers", "*"]\n')
    demo = _inventoried(tmp_path, plan)
    done = gate_inventory(demo.ctx())
    assert done["warnings"] == ["source crm: include pattern 'custmers' matches nothing"]
    report = (tmp_path / "out" / "inventory" / "r" / "inventory.html").read_text()
    assert "include pattern &#39;custmers&#39; matches nothing" in report


def test_the_approval_text_escapes_names_and_shows_what_it_binds_to(demo: DemoRun) -> None:
    """A table named with `|` and a newline used to spoof a row of the Markdown table."""
    with sqlite3.connect(demo.db) as conn:
        conn.execute('CREATE TABLE "evil| sensitive | 1 |\n| x" (id INTEGER PRIMARY KEY, v TEXT)')
    demo.delivered()
    asked = demo.request()
    body = asked["body"]
    assert all(line.startswith("|") or "|" not in line for line in body.splitlines())
    assert f"Deletion request `{asked['request'][:16]}…`" in body
    assert "plan sha256 `" in body


def test_a_changed_identifier_key_is_masked_in_the_refusal(tmp_path: Path) -> None:
    """The refusal names the changed row by key: masked when the key holds identifiers."""
    from retirement.crypto.keys import KeyStore
    from retirement.deletion.tables import delete_table_rows
    from retirement.vault.write import back_up

    ids = ["11010519491231002X", "110105194912310021"]
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id_card TEXT PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO people VALUES (?, 'x')", [(i,) for i in ids])
    keys = KeyStore(tmp_path / "keys", KeyStore.new_master_key(tmp_path / "keys" / "m.key"))
    with SqlSource("s", f"sqlite:///{db}") as source:
        made = back_up(
            source,
            "people",
            qualified="s.people",
            kind="table",
            plan="demo",
            disposition="erase",
            recipients=[keys.archive_key("demo", "erase").recipient],
            out_dir=tmp_path / "v",
            signing_key=keys.signing_key(),
            created_at=NOW,
            key_columns=("id_card",),
        )
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE people SET note = 'changed' WHERE id_card = ?", (ids[0],))
        with pytest.raises(DeletionRefused) as refused:
            delete_table_rows(
                source,
                source.id_of("people"),
                made.manifest,
                made.ciphertext_path,
                [keys.identity("demo", "erase")],
                secret_key=True,
            )
    assert "key …002X" in str(refused.value)
    assert ids[0] not in str(refused.value)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 2  # rolled back


def test_sql_errors_never_show_bound_values(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id_card TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES ('11010519491231002X')")
    with (
        SqlSource("s", f"sqlite:///{db}") as source,
        source.begin() as conn,
        pytest.raises(sa.exc.IntegrityError) as caught,
    ):
        conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": "11010519491231002X"})
    assert "11010519491231002X" not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_a_full_disk_while_the_manifest_is_written_keeps_nothing(
    demo: DemoRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault a real disk gives only when full, faked (named so): ENOSPC writing the
    manifest used to leave an .age file and a 0-byte manifest."""
    from retirement.crypto import signing
    from retirement.errors import RetirementError
    from retirement.vault import write as backup

    real = signing.write_detached

    def full(path: Path, raw: bytes, key):
        path.write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(backup, "write_signed", lambda m, p, k: full(p, m.to_bytes(), k))
    with pytest.raises(RetirementError, match="No space left on device.*nothing was kept"):
        demo.backup("crm.orders")
    assert not [p for p in demo.vault.rglob("*") if p.is_file()]
    monkeypatch.setattr(backup, "write_signed", lambda m, p, k: real(p, m.to_bytes(), k))
    assert demo.backup("crm.orders")["new"] is True


def test_a_dataset_not_in_the_approved_request_is_refused(demo: DemoRun) -> None:
    demo.approved()
    with pytest.raises(DeletionRefused, match="not in the approved deletion request"):
        demo.delete("crm.no_such_table")
