"""The plan's evidence block: a time-stamping authority and witnesses, each reachable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from retirement.errors import PlanError
from retirement.plan.model import load_plan
from tests.support.anchored import demo_plan_with

if TYPE_CHECKING:
    from pathlib import Path


def test_an_evidence_block_loads(tmp_path: Path) -> None:
    plan = load_plan(
        demo_plan_with(
            tmp_path,
            "evidence:\n  timestamp_authority: tsa\n  smtp_connection: mail\n  witnesses:\n"
            "    auditor: {name: An Auditor, email: a@audit.example}\n"
            "    successor: {name: S, role: recipient, sftp_connection: drop, path: w}\n",
        )
    )
    assert plan.evidence.timestamp_authority == "tsa"
    assert plan.witness_smtp == "mail"
    assert plan.evidence.witnesses["successor"].role == "recipient"


def test_without_an_evidence_block_nothing_is_anchored(tmp_path: Path) -> None:
    plan = load_plan(demo_plan_with(tmp_path, ""))
    assert plan.evidence.timestamp_authority is None
    assert plan.evidence.witnesses == {}


@pytest.mark.parametrize(
    ("witness", "message"),
    [
        ("{name: A, email: a@audit.example}", "e-mail witnesses need an SMTP connection"),
        ("{name: A, sftp_connection: drop}", "needs the path"),
        ("{name: A}", "either email or sftp_connection"),
    ],
)
def test_a_witness_that_cannot_be_reached_is_refused(
    tmp_path: Path, witness: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(demo_plan_with(tmp_path, f"evidence:\n  witnesses:\n    auditor: {witness}\n"))
