"""Deletion in foreign-key order on real PostgreSQL and MariaDB: a three-level chain
(customers <- orders <- order_lines) read from the database, deleted children first by one
task; a parent whose child the plan keeps is refused at gate_inventory (both tables and the
constraint named) unless the plan says how."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from retirement.crypto.keys import KeyStore
from retirement.deletion.foreign_keys import ForeignKey
from retirement.errors import GateFailed, SourceError
from retirement.ledger.core import Ledger
from retirement.phases.backup import backup_dataset
from retirement.phases.delete import delete_batch, deletion_request, record_decision
from retirement.phases.gate_backup import gate_backup
from retirement.phases.gate_deletion import gate_deletion
from retirement.phases.gate_inventory import gate_inventory
from retirement.phases.gate_transfer import gate_transfer
from retirement.phases.inventory import inventory_source
from retirement.phases.plan_check import check_plan
from retirement.sources.sql import SqlSource
from tests.support.context import context

if TYPE_CHECKING:
    from retirement.phases.context import RunContext

pytestmark = pytest.mark.integration

PLAN = """\
name: fk_chain
scenario: deregistration
organization:
  name: Chain Co.
  uscc: 91310000MA1FL0000N
  contact: {{name: DPO}}
sources:
  - name: crm
    kind: {kind}
    connection: crm_db
    exclude: {exclude}
dispositions:
  erase: {{action: destroy}}
by_class: {{general: erase, sensitive: erase, core: erase}}
datasets: {rules}
approval:
  approvers: [{{name: Alice, role: DPO, user: alice}}]
"""

TABLES = [
    "CREATE TABLE customers (id int PRIMARY KEY, name varchar(40))",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, "
    "CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE order_lines (id int PRIMARY KEY, order_id int NOT NULL, item varchar(40), "
    "CONSTRAINT lines_order_fk FOREIGN KEY (order_id) REFERENCES orders (id))",
    "CREATE TABLE notes (id int PRIMARY KEY, customer_id int, "
    "CONSTRAINT notes_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "INSERT INTO customers VALUES (1, 'Wang'), (2, 'Li'), (3, 'Zhao')",
    "INSERT INTO orders VALUES (10, 1), (11, 1), (12, 2)",
    "INSERT INTO order_lines VALUES (100, 10, 'tea'), (101, 10, 'cups'), (102, 12, 'rice')",
    "INSERT INTO notes VALUES (1000, 3)",
]


@pytest.fixture(params=["postgres", "mysql"])
def chain(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(plan source kind, URL) of a database holding the chain and a table of notes."""
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in TABLES:
            conn.exec_driver_sql(statement)
    engine.dispose()
    return request.param, url


def _run(tmp: Path, kind: str, url: str, *, exclude: str = "", rules: str = "[]") -> RunContext:
    plan = tmp / "fk_chain.yaml"
    plan.write_text(PLAN.format(kind=kind, exclude=f"[{exclude}]", rules=rules))
    left_out = (exclude,) if exclude else ()
    ledger = Ledger.open(f"sqlite:///{tmp / 'ledger.sqlite'}")
    keys = KeyStore(tmp / "keys", KeyStore.new_master_key(tmp / "keys" / "m.key"))
    sources = {"crm": lambda: SqlSource("crm", url, exclude=left_out)}
    return context(plan, ledger, keys, tmp / "out", sources)


def _to_request(ctx: RunContext) -> dict:
    check_plan(ctx)
    inventory_source(ctx, "crm")
    gate_inventory(ctx)
    with ctx.source("crm") as source:
        for state in ctx.ledger.dataset_states(ctx.run_id):
            backup_dataset(ctx, state.dataset, source)
    gate_backup(ctx)
    gate_transfer(ctx)
    asked = deletion_request(ctx)
    record_decision(ctx, approved=True, by="alice", at=ctx.stamp)
    return asked


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    engine.dispose()
    return int(n)


def test_the_chain_is_read_from_the_database(chain: tuple[str, str]) -> None:
    _, url = chain
    with SqlSource("crm", url) as source:
        keys = source.foreign_keys()
    assert keys == [
        ForeignKey("notes_customer_fk", "notes", "customers"),
        ForeignKey("lines_order_fk", "order_lines", "orders"),
        ForeignKey("orders_customer_fk", "orders", "customers"),
    ]


def test_children_are_deleted_before_parents_by_one_task(
    chain: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = chain
    ctx = _run(tmp_path, kind, url)
    asked = _to_request(ctx)
    # by name, customers would come first, and the database refuses to delete it then
    assert asked["groups"] == [["crm.notes", "crm.order_lines", "crm.orders", "crm.customers"]]
    assert "crm.notes → crm.order\\_lines → crm.orders → crm.customers" in asked["body"]
    with pytest.raises(SourceError, match="the database failed"):
        delete_batch(ctx, ["crm.customers"])
    assert _count(url, "customers") == 3
    done = delete_batch(ctx, asked["groups"][0])
    assert [d["dataset"] for d in done] == asked["groups"][0]
    summary = gate_deletion(ctx)
    assert len(summary["certificates"]) == 4
    assert [_count(url, t) for t in ("order_lines", "orders", "customers", "notes")] == [0] * 4


def test_a_kept_child_is_refused_at_the_gate_naming_both_tables_and_the_constraint(
    chain: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = chain
    ctx = _run(tmp_path, kind, url, exclude="notes")
    check_plan(ctx)
    inventory_source(ctx, "crm")
    with pytest.raises(GateFailed) as failed:
        gate_inventory(ctx)
    message = str(failed.value)
    assert "crm.customers is deleted but crm.notes" in message
    assert "constraint notes_customer_fk" in message
    assert "on_referenced" in message


def test_keep_keeps_the_referenced_parent_and_deletes_the_rest_in_order(
    chain: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = chain
    rule = "[{dataset: crm.customers, disposition: erase, on_referenced: keep}]"
    ctx = _run(tmp_path, kind, url, exclude="notes", rules=rule)
    asked = _to_request(ctx)
    assert asked["groups"] == [["crm.order_lines", "crm.orders"]]
    assert "crm.customers: kept at the source: crm.notes references it" in asked["body"]
    delete_batch(ctx, asked["groups"][0])
    gate_deletion(ctx)
    assert [_count(url, t) for t in ("order_lines", "orders", "customers", "notes")] == [0, 0, 3, 1]


def test_cascade_is_refused_when_the_constraint_does_not_cascade(
    chain: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = chain
    rule = "[{dataset: crm.customers, disposition: erase, on_referenced: cascade}]"
    ctx = _run(tmp_path, kind, url, exclude="notes", rules=rule)
    check_plan(ctx)
    inventory_source(ctx, "crm")
    with pytest.raises(GateFailed, match="notes_customer_fk with ON DELETE NO ACTION"):
        gate_inventory(ctx)


def test_cascade_through_a_cascading_constraint_is_named_in_the_approval(
    chain: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = chain
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    drop = "DROP CONSTRAINT" if kind == "postgres" else "DROP FOREIGN KEY"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE notes {drop} notes_customer_fk")
        conn.exec_driver_sql(
            "ALTER TABLE notes ADD CONSTRAINT notes_cascade_fk FOREIGN KEY (customer_id) "
            "REFERENCES customers (id) ON DELETE CASCADE"
        )
    engine.dispose()
    rule = "[{dataset: crm.customers, disposition: erase, on_referenced: cascade}]"
    ctx = _run(tmp_path, kind, url, exclude="notes", rules=rule)
    asked = _to_request(ctx)
    assert asked["groups"] == [["crm.order_lines", "crm.orders", "crm.customers"]]
    assert "ON DELETE CASCADE of constraint notes\\_cascade\\_fk changes the rows" in asked["body"]
    delete_batch(ctx, asked["groups"][0])
    gate_deletion(ctx)
    assert [_count(url, t) for t in ("order_lines", "orders", "customers", "notes")] == [0] * 4
