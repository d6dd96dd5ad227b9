"""Plans written to break the loader: strict scalars, encodings, tags, aliases, every problem
at once, messages in our words, dataset keys; and the DAG-parse header reads them the same."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest

from retirement.errors import PlanError, PlanIssue
from retirement.plan.header import read_header
from retirement.plan.model import MAX_PLAN_BYTES, load_plan

PLANS = Path(__file__).resolve().parents[3] / "include" / "plans"
DEMO = (PLANS / "demo.yaml").read_text(encoding="utf-8")
PYDANTIC_WORDS = (
    "Input should",
    "after validation",
    "should have at least",
    "Value error",
    "validation error",
)


def _edit(old: str, new: str) -> str:
    assert DEMO.count(old) == 1, f"test setup: {old!r} must occur once in demo.yaml"
    return DEMO.replace(old, new)


def _section(key: str, new: str) -> str:
    """The demo plan with its top-level ``key`` block replaced by ``new``."""
    text, count = re.subn(rf"(?m)^{key}:.*\n(?:[ #].*\n|\n)*", new, DEMO, count=1)
    assert count == 1, f"test setup: no {key} section in demo.yaml"
    return text


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _issues(path: Path) -> tuple[PlanIssue, ...]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return caught.value.issues


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


# ---------------------------------------------------------------------------- messages

BAD_PLANS = [
    pytest.param(
        _edit("  uscc: 91310000MA1FL0000N\n", ""),
        "organization.uscc",
        "required key is missing",
        id="missing",
    ),
    pytest.param(
        _edit("scenario: deregistration", "scenario: deregistration\nscenaro: x"),
        "scenaro",
        "unknown key; expected one of: name, title",
        id="extra-forbidden",
    ),
    pytest.param(
        _section("sources", "sources: []\n\n"),
        "sources",
        "expected at least 1 item",
        id="too-short",
    ),
    pytest.param(
        _edit(
            "scenario: deregistration", f"scenario: deregistration\nmapping: {{pool: {'p' * 300}}}"
        ),
        "mapping.pool",
        "expected at most 256 characters",
        id="string-too-long",
    ),
    pytest.param(
        _edit("years: 30", "years: true"),
        "dispositions.accounting_archive.retention.years",
        "expected a whole number, not a boolean",
        id="int-from-bool",
    ),
    pytest.param(
        _edit("years: 30", 'years: "30"'),
        "dispositions.accounting_archive.retention.years",
        "expected a whole number, not a string",
        id="int-from-string",
    ),
    pytest.param(
        _edit("keep_backup_days: 30", "keep_backup_days: 1.5"),
        "dispositions.erase.keep_backup_days",
        "expected a whole number, not a decimal number",
        id="int-from-float",
    ),
    pytest.param(
        _edit("auto_approve: true ", 'auto_approve: "yes" '),
        "approval.auto_approve",
        "expected true or false (YAML booleans), not a string",
        id="bool-from-string",
    ),
    pytest.param(
        _edit("notify_customers: true", "notify_customers: 1"),
        "dispositions.hand_over.notify_customers",
        "expected true or false (YAML booleans), not a whole number",
        id="bool-from-int",
    ),
    pytest.param(
        _edit("key: [invoice_no]", 'key: [invoice_no]\n    drop_table: "false"'),
        "datasets.0.drop_table",
        "expected true or false (YAML booleans), not a string",
        id="drop-table-string",
    ),
    pytest.param(
        _edit("scenario: deregistration", "scenario: deregistration\nretries: {attempts: true}"),
        "retries.attempts",
        "expected a whole number, not a boolean",
        id="retries-bool",
    ),
    pytest.param(
        _edit("scenario: deregistration", 'scenario: deregistration\nmapping: {max_tasks: "8"}'),
        "mapping.max_tasks",
        "expected a whole number, not a string",
        id="max-tasks-string",
    ),
    pytest.param(
        _edit("title: Demo Trading Co. deregistration", "title: 2024"),
        "title",
        "expected text, not a whole number",
        id="string-type",
    ),
    pytest.param(
        _edit("  name: 演示贸易", '  name: ""\n  former_name: 演示贸易'),
        "organization.name",
        "expected at least 1 character",
        id="string-too-short",
    ),
    pytest.param(
        _edit("name: demo", "name: Demo"), "name", "expected a lowercase name", id="pattern"
    ),
    pytest.param(
        _edit("years: 30", "years: 0"),
        "dispositions.accounting_archive.retention.years",
        "expected a number greater than 0",
        id="greater-than",
    ),
    pytest.param(
        _edit("keep_backup_days: 30", "keep_backup_days: -1"),
        "dispositions.erase.keep_backup_days",
        "expected a number no less than 0",
        id="greater-than-equal",
    ),
    pytest.param(
        _edit("years: 30", "years: 300"),
        "dispositions.accounting_archive.retention.years",
        "expected a number no greater than 200",
        id="less-than-equal",
    ),
    pytest.param(
        _edit("kind: sqlite", "kind: oracle"),
        "sources.0.kind",
        "expected one of: postgres, mysql, sqlite, files, s3",
        id="literal",
    ),
    pytest.param(
        _edit("starts: fiscal_year_end", "starts: calendar"),
        "dispositions.accounting_archive.retention.starts",
        "expected one of: fiscal_year_end, retirement_date",
        id="literal-two",
    ),
    pytest.param(
        _section("by_class", "by_class: [erase]\n\n"),
        "by_class",
        "expected a mapping of keys, not a list",
        id="dict-type",
    ),
    pytest.param(
        _edit(
            "  - dataset: crm.invoices\n    disposition: accounting_archive\n", "  - crm.invoices\n"
        ).replace("    key: [invoice_no]\n", ""),
        "datasets.0",
        "expected a mapping of keys, not a string",
        id="model-type",
    ),
    pytest.param(
        _edit("key: [invoice_no]", "key: invoice_no"),
        "datasets.0.key",
        "expected a list, not a string",
        id="tuple-type",
    ),
    pytest.param(
        _edit(
            "scenario: deregistration",
            "scenario: deregistration\nclassification:\n  min_hit_ratio: high",
        ),
        "classification.min_hit_ratio",
        "expected a number, not a string",
        id="float-type",
    ),
    pytest.param(
        _edit("91310000MA1FL0000N", "91310000MA1FL0000X"),
        "organization.uscc",
        "not a valid unified social credit code",
        id="value-error",
    ),
    pytest.param(
        _edit("scenario: deregistration", "scenario: deregistration\n2024: plan"),
        "2024",
        "a key must be text, not a whole number",
        id="invalid-key",
    ),
    pytest.param(
        _edit("key: [invoice_no]", 'key: [""]'),
        "datasets.0.key",
        "a key column name is empty",
        id="key-empty-column",
    ),
    pytest.param(
        _edit("key: [invoice_no]", "key: [invoice_no]\n    on_referenced: delete"),
        "datasets.0.on_referenced",
        "cascade",
        id="on-referenced",
    ),
    pytest.param(
        _edit("    connection: demo_crm ", "    rewrite: optimize\n    connection: demo_crm "),
        "sources.0",
        "optimize is not for a sqlite source: use vacuum_full or none",
        id="source-rewrite",
    ),
    pytest.param(
        _edit("key: [invoice_no]", "key: [invoice_no]\n    rewrite: optimize"),
        "datasets.0.rewrite",
        "optimize is not for a sqlite source",
        id="rule-rewrite",
    ),
    pytest.param(
        DEMO
        + "residual_copies:\n  tapes:\n    what: tape vault\n    kind: tape\n"
        + "    responsible: ops\n    due: 2027-01-01\n",
        "residual_copies.tapes.kind",
        "wal_pitr",
        id="residual-kind",
    ),
    pytest.param(
        DEMO
        + "residual_copies:\n  tapes:\n    what: tape vault\n    kind: snapshot\n"
        + "    responsible: ops\n    due: soon\n",
        "residual_copies.tapes.due",
        "date",
        id="residual-due",
    ),
    pytest.param(
        _edit("key: [invoice_no]", "key: [invoice_no, year, invoice_no]"),
        "datasets.0.key",
        "the key names column invoice_no more than once",
        id="key-column-twice",
    ),
    pytest.param(
        _edit(
            "  uscc: 91310000MA1FL0000N\n", "  uscc: 91310000MA1FL0000N\n  languages: [zh, fr]\n"
        ),
        "organization.languages.1",
        "expected one of: zh, en",
        id="language-unknown",
    ),
    pytest.param(
        _edit("  uscc: 91310000MA1FL0000N\n", "  uscc: 91310000MA1FL0000N\n  languages: []\n"),
        "organization.languages",
        "expected at least 1 item",
        id="languages-none",
    ),
    pytest.param(
        _edit(
            "  uscc: 91310000MA1FL0000N\n", "  uscc: 91310000MA1FL0000N\n  languages: [en, en]\n"
        ),
        "organization.languages",
        "each language once: en is listed more than once",
        id="language-twice",
    ),
]


def test_languages_are_chinese_and_english_unless_the_plan_names_them(tmp_path: Path) -> None:
    assert load_plan(_write(tmp_path, DEMO)).organization.languages == ("zh", "en")
    only = _edit("  uscc: 91310000MA1FL0000N\n", "  uscc: 91310000MA1FL0000N\n  languages: [en]\n")
    assert load_plan(_write(tmp_path, only)).organization.languages == ("en",)


@pytest.mark.parametrize(("text", "field", "words"), BAD_PLANS)
def test_every_model_error_is_in_our_words(
    tmp_path: Path, text: str, field: str, words: str
) -> None:
    issues = _issues(_write(tmp_path, text))
    matching = [i for i in issues if i.field == field]
    assert matching, f"no issue for {field}: {issues}"
    assert words in matching[0].message, str(matching[0])
    assert matching[0].line is not None, str(matching[0])
    for issue in issues:
        assert not any(w in issue.message for w in PYDANTIC_WORDS), str(issue)


# ---------------------------------------------------------------------------- strict scalars


@pytest.mark.parametrize("value", ['"yes"', "1", '"true"', '"on"'])
def test_header_reads_auto_approve_as_the_model_does(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, _edit("auto_approve: true ", f"auto_approve: {value} "))
    issues = _issues(path)
    assert [i.field for i in issues] == ["approval.auto_approve"]  # not also "no approver"
    header = read_header(path)
    assert header.auto_approve is False
    assert header.name == "demo"


def test_header_auto_approve_true_is_auto(tmp_path: Path) -> None:
    path = _write(tmp_path, DEMO)
    assert load_plan(path).approval.auto_approve is True
    assert read_header(path).auto_approve is True


# ---------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("codec", "label"),
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-32-le", "UTF-32"),
        ("utf-32-be", "UTF-32"),
    ],
)
def test_wide_encodings_are_named(tmp_path: Path, codec: str, label: str) -> None:
    path = _write(tmp_path, DEMO.encode(codec))
    (issue,) = _issues(path)
    assert issue.message == f"the plan is {label}: save it as UTF-8"
    assert read_header(path).problem == f"the plan is {label}: save it as UTF-8"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, codecs.BOM_UTF8 + DEMO.encode("utf-8"))
    assert load_plan(path).name == "demo"
    assert read_header(path).problem is None


def test_invalid_utf8_names_line_and_byte_offset(tmp_path: Path) -> None:
    raw = DEMO.encode("utf-8").replace(b"Demo Trading Co.", b"D\xe9mo Trading Co.")
    path = _write(tmp_path, raw)
    (issue,) = _issues(path)
    offset = raw.index(b"D\xe9mo") + 1
    assert issue.line == raw[:offset].count(b"\n") + 1
    assert f"not valid UTF-8 at byte offset {offset}" in issue.message
    assert f"line {issue.line}: not valid UTF-8" in (read_header(path).problem or "")


def test_binary_file_is_not_text(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (issue,) = _issues(path)
    assert "is not a text file" in issue.message
    assert "is not a text file" in (read_header(path).problem or "")


def test_oversized_file_is_refused_unparsed(tmp_path: Path) -> None:
    path = _write(tmp_path, DEMO + "# padding\n" * (MAX_PLAN_BYTES // 10))
    (issue,) = _issues(path)
    assert "larger than 4 MiB" in issue.message
    assert "larger than 4 MiB" in (read_header(path).problem or "")


# ---------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ('!!python/object/apply:os.system ["id"]', "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!vault secret", "!vault"),
    ],
)
def test_tags_are_refused_with_their_line(tmp_path: Path, value: str, tag: str) -> None:
    text = _edit("title: Demo Trading Co. deregistration", f"title: {value}")
    path = _write(tmp_path, text)
    (issue,) = _issues(path)
    assert issue.message == f"tag {tag} is not allowed in a plan"
    assert (issue.field, issue.line) == ("title", _line_of(text, "title:"))
    assert f"tag {tag} is not allowed" in (read_header(path).problem or "")


def test_unconstructible_scalar_is_located(tmp_path: Path) -> None:
    text = _edit("title: Demo Trading Co. deregistration", "title: 2024-13-45")
    (issue,) = _issues(_write(tmp_path, text))
    assert issue.line == _line_of(text, "title:")
    assert "cannot read '2024-13-45' as !!timestamp" in issue.message


# ---------------------------------------------------------------------------- aliases


def _laughs(levels: int = 9) -> str:
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels], strict=False):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(10)
def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    path = _write(tmp_path, _laughs())
    (issue,) = _issues(path)
    assert "expands to more than 100,000 YAML nodes (through aliases *a, *b" in issue.message
    assert issue.line == 2  # where the first alias is
    assert "100,000 YAML nodes" in (read_header(path).problem or "")


@pytest.mark.timeout(10)
def test_header_does_not_expand_aliases(tmp_path: Path) -> None:
    text = _laughs() + _edit("title: Demo Trading Co. deregistration", "title: *i")
    path = _write(tmp_path, text)
    header = read_header(path)
    assert "100,000 YAML nodes" in (header.problem or "")
    assert header.title == ""
    assert "100,000 YAML nodes" in _issues(path)[0].message


@pytest.mark.timeout(10)
def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    (issue,) = _issues(_write(tmp_path, DEMO + "loop: &loop [*loop]\n"))
    assert "nests more than 64 levels deep (through aliases *loop)" in issue.message


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    text = _edit("  contact:\n    name: Li Wei", "  contact: &dpo\n    name: Li Wei").replace(
        "    contact:\n      name: Zhang Min (customer data desk)\n"
        '      email: handover@successor.example\n      phone: "+86 21 5555 0200"\n',
        "    contact: *dpo\n",
    )
    plan = load_plan(_write(tmp_path, text))
    assert plan.recipients["successor"].contact == plan.organization.contact


# ---------------------------------------------------------------------------- all at once


def test_model_and_reference_problems_are_reported_together(tmp_path: Path) -> None:
    text = _edit("kind: sqlite", "kind: oracle").replace(
        "destinations: [successor_drop]", "destinations: [nowhere]"
    )
    issues = _issues(_write(tmp_path, text))
    assert [(i.field, i.line) for i in issues] == [
        ("sources.0.kind", _line_of(text, "kind: oracle")),
        ("dispositions.hand_over.destinations.0", _line_of(text, "destinations: [nowhere]")),
    ]
    assert issues[1].message == ("undefined destination; expected one of: archive, successor_drop")


def test_every_reference_check_runs_beside_model_errors(tmp_path: Path) -> None:
    text = (
        _edit("kind: sqlite", "kind: oracle")  # a model error
        .replace("recipient: successor", "recipient: nobody")
        .replace("  core: hand_over\n", "  secret: erase\n")
        .replace("disposition: accounting_archive", "disposition: nothing")
        .replace("    path: successor\n", "")
        .replace("auto_approve: true ", "auto_approve: false ")
    )
    fields = {i.field: i.message for i in _issues(_write(tmp_path, text))}
    assert "sources.0.kind" in fields
    assert fields["dispositions.hand_over.recipient"].startswith("undefined recipient")
    assert fields["by_class.secret"].startswith("unknown class")
    assert fields["by_class"].startswith("no disposition for class core")
    assert fields["datasets.0.disposition"].startswith("undefined disposition")
    assert fields["destinations.successor_drop.path"] == "a local destination needs path"
    assert fields["approval.approvers"].startswith("at least one approver is required")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        pytest.param(
            "destinations: [archive]", "destinations: [Archive!]", "dispositions", id="bad-name"
        ),
        pytest.param(
            "dataset: crm.invoices", "dataset: invoices", "datasets.0.dataset", id="bad-dataset"
        ),
        pytest.param("action: retain", "action: keep", "dispositions", id="bad-action"),
        pytest.param("years: 30", "years: true", "dispositions", id="bad-years"),
        pytest.param("kind: local\n    path: archive", "kind: ftp", "destinations", id="bad-kind"),
    ],
)
def test_a_check_on_an_invalid_value_is_skipped(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    """The model's error is the one problem: no second one about the value it refused."""
    issues = _issues(_write(tmp_path, _edit(old, new)))
    assert len(issues) == 1, issues
    assert issues[0].field.startswith(field)


# ---------------------------------------------------------------- certificates' plan fields


def test_a_sensitive_transfer_without_an_impact_assessment_is_refused(tmp_path: Path) -> None:
    text = "\n".join(
        line
        for line in DEMO.splitlines()
        if "impact_assessment" not in line
        and "file: assessments/" not in line
        and not line.strip().startswith("sha256: acb3")
    )
    issues = _issues(_write(tmp_path, text))
    fields = [(i.field, i.message) for i in issues]
    assert ("dispositions.hand_over.impact_assessment") in [f for f, _ in fields]
    (sensitive,) = [m for f, m in fields if "class sensitive" in m]
    assert "PIPL Art. 55-56" in sensitive
    assert "by_class.sensitive" in sensitive


def test_only_a_transfer_has_an_impact_assessment_or_a_transfers_legal_basis(
    tmp_path: Path,
) -> None:
    text = _edit(
        "    action: destroy\n",
        '    action: destroy\n    impact_assessment: {file: x.pdf, sha256: "' + "0" * 64 + '"}\n',
    ).replace(
        'deletion: "PIPL Art. 47(1): the purpose is achieved',
        'transfer: "PIPL Art. 22: no"\n      deletion: "PIPL Art. 47(1): the purpose is achieved',
    )
    fields = {i.field: i.message for i in _issues(_write(tmp_path, text))}
    assert fields["dispositions.erase.impact_assessment"].startswith(
        "only a transfer disposition has an impact_assessment"
    )
    assert "only a transfer disposition" in fields["dispositions.erase.legal_basis.transfer"]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        pytest.param(
            "sha256: acb3a49f", "sha256: XYZ3a49f", "impact_assessment.sha256", id="bad-digest"
        ),
        pytest.param(
            "title: Head of IT operations, ", "", "sanitization.performed_by.title", id="no-title"
        ),
        pytest.param("  crm.orders: [customer_id]", "  crm.orders: []", "customer_keys", id="keys"),
    ],
)
def test_the_certificates_plan_fields_are_validated(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    issues = _issues(_write(tmp_path, _edit(old, new)))
    assert any(field in i.field for i in issues), [(i.field, i.message) for i in issues]
