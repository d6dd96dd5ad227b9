"""Fixtures of the unit tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.demo import DemoRun, demo_run

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    """The demo CRM checked, inventoried and gated as run "r"."""
    run = demo_run(tmp_path)
    yield run
    run.ledger.close()
