"""The plan loader: valid plans load; each kind of mistake is named with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from retirement.errors import PlanError
from retirement.plan.model import load_plan

PLANS = Path(__file__).resolve().parents[3] / "include" / "plans"
DEMO = (PLANS / "demo.yaml").read_text(encoding="utf-8")
AGE_KEY = "age1vc6ruva34lrxjr7wp47a3wnxzgq6tgtspqu9rcd4w0ffd82n4s4s26gpdt"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _edit(old: str, new: str) -> str:
    assert DEMO.count(old) == 1, f"test setup: {old!r} must occur once in demo.yaml"
    return DEMO.replace(old, new)


@pytest.mark.parametrize(
    "path",
    sorted(PLANS.glob("*.yaml")) + sorted((PLANS.parent / "templates").glob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_shipped_plans_are_valid(path: Path) -> None:
    plan = load_plan(path)
    assert plan.dag_id == f"retire__{plan.name}"
    assert len(plan.sha256) == 64
    assert set(plan.by_class) == set(plan.classification.classes)


def test_demo_plan_model() -> None:
    plan = load_plan(PLANS / "demo.yaml")
    assert plan.scenario == "deregistration"
    assert [s.name for s in plan.sources] == ["crm", "exports"]
    assert plan.dispositions["accounting_archive"].retention.years == 30
    assert plan.disposition_for("crm.invoices", "general") == "accounting_archive"
    assert plan.disposition_for("crm.customers", "sensitive") == "hand_over"
    assert plan.recipients["successor"].age_public_key == AGE_KEY
    assert plan.classification.class_of("cn_resident_id") == "sensitive"
    with pytest.raises(Exception, match="frozen"):
        plan.name = "other"  # type: ignore[misc]


MISTAKES = [
    pytest.param(
        "scenario: deregistration",
        "scenario: deregistration\nscenaro_notes: x",
        "scenaro_notes",
        "unknown key; expected one of:",
        "scenaro_notes",
        id="unknown-key",
    ),
    pytest.param(
        "years: 30",
        "years: thirty",
        "dispositions.accounting_archive.retention.years",
        "expected a whole number, not a string",
        "years: thirty",
        id="wrong-type",
    ),
    pytest.param(
        "action: destroy",
        "action: shred",
        "dispositions.erase.action",
        "expected one of: retain, transfer, destroy",
        "action: shred",
        id="unknown-disposition-action",
    ),
    pytest.param(
        "years: 30",
        "years: 0",
        "dispositions.accounting_archive.retention.years",
        "expected a number greater than 0",
        "years: 0",
        id="retention-not-positive",
    ),
    pytest.param(
        "destinations: [successor_drop]",
        "destinations: [sucessor_drop]",
        "dispositions.hand_over.destinations.0",
        "undefined destination; expected one of: archive, successor_drop",
        "sucessor_drop",
        id="undefined-destination",
    ),
    pytest.param(
        "    key: [invoice_no]\n",
        "    key: [invoice_no]\n  - dataset: crm.invoices\n    disposition: erase\n",
        "datasets.1.dataset",
        "duplicate dataset",
        "  - dataset: crm.invoices\n    disposition: erase",
        id="duplicate-dataset",
    ),
    pytest.param(
        AGE_KEY,
        "age1notakey",
        "recipients.successor.age_public_key",
        "not an age X25519 public key",
        "age1notakey",
        id="bad-age-key",
    ),
    pytest.param(
        "91310000MA1FL0000N",
        "91310000MA1FL0000X",
        "organization.uscc",
        "mod-31 check character",
        "91310000MA1FL0000X",
        id="bad-uscc-check-digit",
    ),
    pytest.param(
        "scenario: deregistration",
        "scenario: bankruptcy",
        "scenario",
        "expected one of: deregistration, change, transfer_liquidation",
        "bankruptcy",
        id="unknown-scenario",
    ),
    pytest.param(
        "  uscc: 91310000MA1FL0000N\n",
        "",
        "organization.uscc",
        "required key is missing",
        "organization:",
        id="missing-required-key",
    ),
    pytest.param(
        "recipient: successor",
        "recipient: succesor",
        "dispositions.hand_over.recipient",
        "undefined recipient; expected one of: successor",
        "recipient: succesor",
        id="undefined-recipient",
    ),
    pytest.param(
        "    recipient: successor\n",
        "",
        "dispositions.hand_over.recipient",
        "needs a recipient (PIPL Art. 22",
        "  hand_over:",
        id="transfer-without-recipient",
    ),
    pytest.param(
        "  core: hand_over\n",
        "",
        "by_class",
        "no disposition for class core",
        "by_class:",
        id="class-without-disposition",
    ),
    pytest.param(
        "  core: hand_over\n",
        "  core: hand_over\n  secret: erase\n",
        "by_class.secret",
        "unknown class; expected one of: general, sensitive, core",
        "secret: erase",
        id="unknown-class",
    ),
    pytest.param(
        "kind: sqlite",
        "kind: oracle",
        "sources.0.kind",
        "expected one of: postgres, mysql, sqlite, files, s3",
        "kind: oracle",
        id="unknown-source-kind",
    ),
    pytest.param(
        "  - name: exports\n",
        "  - name: crm\n",
        "sources.1.name",
        "duplicate source name",
        "  - name: crm\n    kind: files",
        id="duplicate-source",
    ),
    pytest.param(
        "title: Demo",
        "title: Demo\ntitle: Again\n#",
        "title",
        "duplicate key",
        "title: Again",
        id="duplicate-yaml-key",
    ),
    pytest.param("sources:\n", "sources: [\n", "(syntax)", "invalid YAML", None, id="yaml-syntax"),
    pytest.param(
        "      starts: fiscal_year_end",
        "      starts: fiscal_year_end\n      permanent: true",
        "dispositions.accounting_archive.retention",
        "give exactly one of years: N or permanent: true",
        "    retention:",
        id="retention-years-and-permanent",
    ),
    pytest.param(
        "  auto_approve: true ",
        "  auto_approve: false ",
        "approval.approvers",
        "at least one approver is required",
        "approval:",
        id="no-approver",
    ),
    pytest.param(
        "  - dataset: crm.invoices",
        "  - dataset: invoices",
        "datasets.0.dataset",
        "expected '<source>.<dataset>'",
        "dataset: invoices",
        id="dataset-not-qualified",
    ),
    pytest.param(
        "  - dataset: crm.invoices",
        "  - dataset: billing.invoices",
        "datasets.0.dataset",
        "names undefined source; expected one of: crm, exports",
        "billing.invoices",
        id="dataset-of-undefined-source",
    ),
    pytest.param(
        "scenario: deregistration",
        "scenario: deregistration\nclassification:\n  detectors: {email: secret}",
        "classification",
        "detectors.email names class 'secret'",
        "classification:",
        id="policy-override-unknown-class",
    ),
    pytest.param(
        "scenario: deregistration",
        "scenario: deregistration\nclassification:\n  custom_detectors:\n"
        "    member_no: {pattern: 'M-(\\d+'}",
        "classification.custom_detectors.member_no",
        "invalid regular expression",
        "member_no:",
        id="custom-detector-bad-regex",
    ),
    pytest.param(
        "scenario: deregistration",
        "scenario: deregistration\nclassification:\n  custom_detectors:\n"
        "    member_no: {pattern: 'M-\\d+', validator: crc32}",
        "classification.custom_detectors.member_no",
        "unknown validator 'crc32'",
        "member_no:",
        id="custom-detector-unknown-validator",
    ),
    pytest.param(
        "    path: successor\n",
        "",
        "destinations.successor_drop.path",
        "a local destination needs path",
        "  successor_drop:",
        id="destination-incomplete",
    ),
]


@pytest.mark.parametrize(("old", "new", "field", "message", "line_text"), MISTAKES)
def test_each_mistake_is_located_and_explained(
    tmp_path: Path, old: str, new: str, field: str, message: str, line_text: str | None
) -> None:
    text = _edit(old, new)
    path = _write(tmp_path, text)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    issues = [i for i in caught.value.issues if i.field == field]
    assert issues, f"no issue for {field}; got: {caught.value}"
    issue = issues[0]
    assert message in issue.message, str(issue)
    assert issue.file == str(path)
    if line_text is not None:
        expected_line = text[: text.index(line_text)].count("\n") + 1
        assert issue.line == expected_line, str(issue)
    rendered = str(caught.value)
    assert f"{path}:" in rendered
    assert field in rendered


def test_credential_in_plan_is_refused_and_not_echoed(tmp_path: Path) -> None:
    text = _edit("connection: demo_crm ", "connection: postgresql://admin:s3cret@db/crm ")
    with pytest.raises(PlanError) as caught:
        load_plan(_write(tmp_path, text))
    (issue,) = caught.value.issues
    assert issue.field == "sources.0.connection"
    assert "never a URL or a credential" in issue.message
    assert "s3cret" not in str(caught.value)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = DEMO.replace("destinations: [successor_drop]", "destinations: [nowhere]").replace(
        "recipient: successor", "recipient: nobody"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(_write(tmp_path, text))
    fields = {i.field for i in caught.value.issues}
    assert {"dispositions.hand_over.destinations.0", "dispositions.hand_over.recipient"} <= fields
    assert str(caught.value).startswith("2 problems in plan")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("- a\n- b\n", "mapping", id="not-a-mapping"),
    ],
)
def test_file_level_problems(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        load_plan(_write(tmp_path, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read plan: No such file"):
        load_plan(tmp_path / "absent.yaml")


def test_plan_overrides_merge_with_default_policy(tmp_path: Path) -> None:
    text = _edit(
        "scenario: deregistration",
        "scenario: deregistration\nclassification:\n  detectors: {email: sensitive}",
    )
    plan = load_plan(_write(tmp_path, text))
    assert plan.classification.class_of("email") == "sensitive"
    assert plan.classification.class_of("bank_card") == "sensitive"  # default kept
    assert plan.classification.class_of("ip_address") == "general"


def test_sha256_changes_with_content(tmp_path: Path) -> None:
    first = load_plan(_write(tmp_path, DEMO)).sha256
    second = load_plan(_write(tmp_path, DEMO + "\n# comment\n")).sha256
    assert first != second
