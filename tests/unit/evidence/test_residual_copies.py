"""Residual copies (what the pipeline cannot reach): listed by the plan, shown in the
approval text, attested over the CLI into the ledger (who, when), listed with their state
in the certificates and the dossier; the plan's rewrite named in the certificate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retirement.cli.root import app
from retirement.errors import AttestationRefused
from retirement.evidence.residual import attest_residual, residual_states
from tests.support.demo import PLAN, DemoRun, demo_run

RESIDUAL = """
residual_copies:
  wal_archive:
    what: "WAL archive of the CRM (pgBackRest, s3://backups/crm)"
    kind: wal_pitr
    responsible: DBA team (Chen Jie)
    due: 2027-01-31
  crm_replica:
    what: CRM read replica crm-ro-1
    kind: replica
    responsible: Platform team
    due: 2026-12-31
"""


@pytest.fixture
def residual(tmp_path: Path) -> Iterator[DemoRun]:
    plan = tmp_path / "demo.yaml"
    text = Path(PLAN).read_text(encoding="utf-8")
    rewrite = "    connection: demo_crm\n    rewrite: none  #"
    assert text.count("    connection: demo_crm ") == 1
    plan.write_text(text.replace("    connection: demo_crm ", rewrite, 1) + RESIDUAL)
    run = demo_run(tmp_path / "run", plan=str(plan))
    yield run
    run.ledger.close()


def _attest(demo: DemoRun, copy: str, by: str = "Chen Jie") -> object:
    url = str(demo.ledger.engine.url)
    return CliRunner().invoke(
        app,
        ["attest-residual", demo.plan, "r", copy, "--by", by, "--ledger", url, "--note", "T-1"],
    )


def test_the_approval_text_shows_every_residual_copy_with_its_state(residual: DemoRun) -> None:
    residual.delivered()
    body = residual.request()["body"]
    assert "Copies this pipeline cannot reach" in body
    assert "WAL / point-in-time-recovery archive" in body
    assert "| 2027-01-31 | open |" in body
    assert "CRM read replica crm-ro-1" in body


def test_an_attestation_is_recorded_with_who_and_when_and_never_twice(residual: DemoRun) -> None:
    done = _attest(residual, "wal_archive")
    assert done.exit_code == 0, done.output
    assert "attested by Chen Jie" in done.output
    events = residual.ledger.events_of("r", ("residual_copy_attested",))
    assert [(e.actor, e.payload["copy"], e.payload["note"]) for e in events] == [
        ("Chen Jie", "wal_archive", "T-1")
    ]
    assert events[0].payload["attested_at"]
    again = _attest(residual, "wal_archive", by="someone else")
    assert again.exit_code == 1
    assert "attested already by Chen Jie" in again.output
    unknown = _attest(residual, "tape_vault")
    assert unknown.exit_code == 1
    assert "lists no residual copy 'tape_vault' (residual_copies: crm_replica, wal_archive)" in (
        unknown.output.replace("\n", " ")
    )
    plan = residual.ctx().plan
    with pytest.raises(AttestationRefused, match="no run other"):
        attest_residual(residual.ledger, plan, "other", "crm_replica", by="x", at="now")
    states = {s["copy"]: s["state"] for s in residual_states(plan, residual.ledger, "r")}
    assert states == {"wal_archive": "attested", "crm_replica": "open"}


def test_certificates_and_dossier_list_the_copies_with_their_state(residual: DemoRun) -> None:
    from retirement.phases.seal import seal

    residual.approved()
    _attest(residual, "crm_replica", by="Platform on-call")
    for dataset in ("crm.customers", "crm.invoices", "crm.orders"):
        done = residual.delete(dataset)
        assert "no rewrite (the plan's rewrite: none" in done["technique"]
    certificates = residual.gate_deletion()["certificates"]
    cert = json.loads(Path(certificates[0]).read_text(encoding="utf-8"))
    states = {r["copy"]: (r["state"], r["attested_by"]) for r in cert["residual_copies"]}
    assert states == {
        "wal_archive": ("open", None),
        "crm_replica": ("attested", "Platform on-call"),
    }
    assert "no rewrite" in cert["sanitization"]["technique"]
    html = Path(certificates[0]).with_suffix(".html").read_text(encoding="utf-8")
    assert "CRM read replica crm-ro-1" in html
    index = seal(residual.ctx(include=["customers", "invoices", "orders"]))
    listed = json.loads((index.parent / "residual_copies.json").read_text(encoding="utf-8"))
    assert [(r["copy"], r["state"]) for r in listed] == [
        ("wal_archive", "open"),
        ("crm_replica", "attested"),
    ]
    assert "Residual copies" in index.read_text(encoding="utf-8")
