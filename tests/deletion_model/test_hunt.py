"""The model-based hunt for deletion bugs (docs/deletion.md, "How it is tested").

In ``make test`` a fixed-seed slice runs (the same examples every time). The long mode,
``make test-deletion-fuzz`` (``RETIREMENT_HUNT_MINUTES=10``), draws new random examples per
backend until the time is up; what it finds is shrunk, printed as a plain ``Scenario(...)``
and kept in ``test_regressions.py``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings

from tests.deletion_model.scenarios import scenarios
from tests.deletion_model.world import hunt
from tests.servers.databases import (
    create_mysql_database,
    create_pg_database,
    drop_mysql_database,
    drop_pg_database,
)

if TYPE_CHECKING:
    from tests.deletion_model.world import Scenario

MINUTES = float(os.environ.get("RETIREMENT_HUNT_MINUTES", "0"))
EXAMPLES = {"sqlite": 25, "files": 25, "postgres": 12, "mysql": 12}


def run_one(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("hunt")
    url = None
    if scenario.backend == "postgres":
        url = create_pg_database("hunt")
    elif scenario.backend == "mysql":
        url = create_mysql_database("hunt")
    try:
        return hunt(scenario, tmp, url).violations
    finally:
        if scenario.backend == "postgres" and url:
            drop_pg_database(url)
        elif scenario.backend == "mysql" and url:
            drop_mysql_database(url)


@pytest.mark.parametrize("backend", ["sqlite", "files", "postgres", "mysql"])
def test_deletion_never_outruns_its_proof(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random sources, faults, kills and retries: nothing is deleted that is not safely
    elsewhere, nothing is certified that did not happen, every refusal says why."""
    long_mode = MINUTES > 0

    @settings(
        max_examples=20 if long_mode else EXAMPLES[backend],
        derandomize=not long_mode,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenario=scenarios(backend))
    def hunt_once(scenario: Scenario) -> None:
        violations = run_one(scenario, tmp_path_factory)
        assert not violations, "\n".join(violations)

    if not long_mode:
        hunt_once()
        return
    end = time.monotonic() + MINUTES * 60 / 4  # the time is shared by the four backends
    while time.monotonic() < end:
        hunt_once()
