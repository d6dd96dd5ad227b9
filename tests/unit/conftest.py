"""Fixtures of the unit tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.unit.demo_run import demo_run

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def setup(tmp_path: Path):  # noqa: ANN201
    """(ledger, keys, crm.sqlite, vault) of a demo run inventoried as run "r"."""
    yield from demo_run(tmp_path)
