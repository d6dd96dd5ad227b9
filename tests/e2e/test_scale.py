"""Scale in miniature, in every `make test`: a generated organization with more datasets than
the plan's ``mapping.max_tasks`` runs in a real Airflow (LocalExecutor, PostgreSQL metadata
and ledger), its steps mapped over batches. The full-size run (2,000 tables, 100,000 files)
is ``bench/scale_bench.py``; its numbers are in bench/RESULTS.md."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from bench.scale_bench import run_scale
from retirement.ledger.core import Ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TABLES, FILES, MAX_TASKS = 40, 160, 8


def test_a_generated_organization_runs_in_batched_mapped_tasks() -> None:
    seen: dict = {}

    def check(facts: dict) -> None:
        seen.update(facts)
        ledger = Ledger.open(facts["ledger_url"], create=False)
        states = Counter(s.state for s in ledger.dataset_states(facts["run_id"]))
        seen["states"] = states
        seen["certificates"] = len(ledger.artifacts(facts["run_id"], kind="certificate"))
        ledger.verify()
        ledger.close()
        with psycopg.connect(facts["source_url"]) as pg:
            names = [
                r[0]
                for r in pg.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ]
            seen["tables"] = len(names)
            seen["rows_left"] = sum(
                pg.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names
            )
        seen["files_left"] = [p for p in facts["exports"].rglob("*") if p.is_file()]

    got = run_scale(TABLES, FILES, MAX_TASKS, parallelism=4, check=check)
    assert got["state"] == "success"
    assert seen["states"] == {"deleted": TABLES + FILES}
    assert seen["certificates"] == TABLES + FILES
    assert seen["tables"] == TABLES  # rows deleted, tables kept (no drop_table rule)
    assert seen["rows_left"] == 0
    assert seen["files_left"] == []
    mapped = Counter(t["task_id"] for t in seen["task_instances"])
    for step in ("backup", "delete"):
        assert mapped[step] == MAX_TASKS, step  # 200 datasets in 8 batches
    assert mapped["transfer"] <= MAX_TASKS
    assert {s for s, _, _, _ in got["rows"]} >= {"backup", "transfer", "delete", "seal"}
