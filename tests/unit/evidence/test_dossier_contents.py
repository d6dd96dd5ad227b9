"""What the closure dossier's index.html tells an auditor beyond the files: each
certificate with its dataset, each retained archive's end date and legal hold, the people
responsible and the legal basis of each disposition."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from retirement.evidence.dossier import build_dossier
from retirement.plan.model import load_plan
from tests.support.demo import CRM, NOW, PLAN

if TYPE_CHECKING:
    from retirement.plan.model import Plan
    from tests.support.demo import DemoRun


def _sealed(demo: DemoRun, plan: Plan) -> str:
    demo.approved()
    for dataset in CRM:
        demo.delete(dataset)
    demo.gate_deletion()
    index = build_dossier(
        plan,
        plan_path=Path(PLAN),
        ledger=demo.ledger,
        run_id="r",
        keys=demo.keys,
        output_dir=demo.tmp / "out",
        generated=NOW,
    )
    return index.read_text()


def test_certificates_are_listed_with_their_dataset(demo: DemoRun) -> None:
    html = _sealed(demo, load_plan(PLAN))
    for artifact in demo.ledger.artifacts("r", kind="certificate"):
        name = Path(artifact["location"]).name
        row = re.search(rf"<tr><td>([^<]*)</td><td><a href=\"certificates/{name[:-5]}", html)
        assert row is not None, name
        assert row.group(1) == artifact["dataset"]
    assert {a["dataset"] for a in demo.ledger.artifacts("r", kind="certificate")} == set(CRM)


def test_retained_archives_show_their_end_date_and_legal_hold(demo: DemoRun) -> None:
    plan = load_plan(PLAN)
    html = _sealed(demo, plan)
    invoices = demo.ledger.dataset_state("r", "crm.invoices")
    assert invoices is not None
    backup = invoices.backup
    assert backup is not None

    until = json.loads(Path(backup.manifest).read_text())["extra"]["retention"]["retain_until"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", until)
    assert "<td>crm.invoices</td><td>会计档案管理办法" in html
    none = '<span lang="zh">无</span> / <span lang="en">none</span>'
    assert f"<td>{until}</td><td>{none}</td>" in html


def test_a_legal_hold_is_shown_beside_the_archive(demo: DemoRun) -> None:
    plan = load_plan(PLAN)
    held = plan.dispositions["accounting_archive"].model_copy(
        update={"legal_hold": "court order 2056-17"}
    )
    plan = plan.model_copy(
        update={"dispositions": {**plan.dispositions, "accounting_archive": held}}
    )
    html = _sealed(demo, plan)
    assert "</td><td>court order 2056-17</td></tr>" in html


def test_the_people_and_the_legal_basis_are_on_the_page(demo: DemoRun) -> None:
    html = _sealed(demo, load_plan(PLAN))
    assert "Li Wei, Data protection officer (dpo@demo-trading.example)" in html
    assert '<span lang="en">performed by</span>: Wang Fang, Head of IT operations' in html
    assert '<span lang="en">deletion (PIPL Art. 47)</span>: PIPL Art. 47(1)' in html
    assert '<span lang="en">transfer (PIPL Art. 22)</span>: PIPL Art. 22' in html
    assert "assessments/demo-successor-transfer.md" in html
