"""docs/your-first-plan.md: its plan is valid as written, and it names every setting a
native Airflow needs (the ones the end-to-end stacks set: tests/e2e/stack.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.markdown import fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "your-first-plan.md").read_text()


def test_the_guides_plan_is_valid(tmp_path: Path) -> None:
    from retirement.plan.model import load_plan

    (plan,) = [b for lang, b in fenced_blocks(GUIDE) if lang == "yaml" and "name: acme" in b]
    path = tmp_path / "acme.yaml"
    path.write_text(plan)
    loaded = load_plan(path)
    assert loaded.approval.required == 2
    assert [a.user for a in loaded.approval.approvers] == ["admin", "li.wei"]
    assert loaded.notify is not None


def test_the_guide_names_the_environment_airflow_needs() -> None:
    for setting in (
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "PYTHONPATH",
        "RETIREMENT_PLANS_DIR",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW_CONN_RETIREMENT_LEDGER",
        "AIRFLOW_CONN_RETIREMENT_KEYS",
    ):
        assert setting in GUIDE, setting
    stack = (ROOT / "tests" / "e2e" / "stack.py").read_text()
    for setting in re.findall(r'"(AIRFLOW__CORE__[A-Z_]+_(?:FOLDER|URL))"', stack):
        assert setting in GUIDE, setting
    assert "include/templates/" in GUIDE
