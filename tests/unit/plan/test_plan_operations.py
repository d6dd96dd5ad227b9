"""The plan's operational settings: named approvers, approval.required and timeout, task and
run timeouts, notifications; the model refuses what would be unsafe, the DAG's cheap header
reads the same values (and the same defaults)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from retirement.errors import PlanError
from retirement.plan import durations
from retirement.plan.header import read_header
from retirement.plan.model import Timeouts, load_plan
from retirement.plan.operations import DEFAULT_TIMEOUTS

DEMO = (Path(__file__).resolve().parents[3] / "include" / "plans" / "demo.yaml").read_text()
AUTO = "approval:\n  auto_approve: true"


def _plan(tmp_path: Path, approval: str, extra: str = "") -> Path:
    assert AUTO in DEMO
    path = tmp_path / "plan.yaml"
    path.write_text(DEMO.replace(AUTO, approval.rstrip() + "\n  #") + extra)
    return path


def _problems(path: Path) -> dict[str, str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return {i.field: i.message for i in caught.value.issues}


TWO = """approval:
  approvers:
    - {name: Alice, role: DPO, user: alice}
    - {name: Bob, role: legal, user: "7"}
  required: 2
  timeout: 3d
"""


def test_named_approvers_required_and_timeout_reach_the_header(tmp_path: Path) -> None:
    notify = "\nnotify:\n  connection: smtp_ops\n  to: [ops@example.com]\n  events: [failure]\n"
    path = _plan(tmp_path, TWO, notify + "retries:\n  timeouts: {backup: 90m, run: 5d}\n")
    plan = load_plan(path)
    assert plan.approval.required == 2
    assert plan.approval.timeout_seconds == 3 * 86400
    header = read_header(path)
    assert header.approvals_required == 2
    assert [(a.user, a.name) for a in header.ops.approvers] == [("alice", "Alice"), ("7", "Bob")]
    assert header.ops.approval_timeout == 3 * 86400
    assert header.ops.timeouts["backup"] == 90 * 60
    assert header.ops.timeouts["run"] == 5 * 86400
    assert header.ops.timeouts["delete"] == 6 * 3600  # a default
    assert header.ops.notify is not None
    assert header.ops.notify.connection == "smtp_ops"
    assert header.ops.notify.events == ("failure",)


@pytest.mark.parametrize(
    ("approval", "field", "message"),
    [
        pytest.param(
            "approval:\n  approvers:\n    - {name: Alice, role: DPO}\n",
            "approval",
            "approver Alice has no `user`",
            id="unnamed",
        ),
        pytest.param(
            TWO.replace("required: 2", "required: 3"),
            "approval",
            "required is 3 but only 2 approver(s) are named",
            id="too-few",
        ),
        pytest.param(
            TWO.replace('"7"', "alice"),
            "approval",
            "user alice is named for more than one approver",
            id="same-user",
        ),
        pytest.param(
            TWO.replace("3d", "3 days"), "approval.timeout", "not a duration", id="bad-duration"
        ),
        pytest.param(
            TWO.replace("3d", "30d"),
            "approval.timeout",
            "is not shorter than retries.timeouts.run (14d)",
            id="longer-than-the-run",
        ),
    ],
)
def test_unsafe_approval_settings_are_refused(
    tmp_path: Path, approval: str, field: str, message: str
) -> None:
    problems = _problems(_plan(tmp_path, approval))
    assert any(message in text for text in problems.values()), problems
    assert field in problems, problems


def test_the_header_and_the_model_have_the_same_timeouts() -> None:
    assert Timeouts().model_dump() == DEFAULT_TIMEOUTS
    assert all(durations.seconds(v) for v in DEFAULT_TIMEOUTS.values())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("6h", 21600), ("3d", 259200), ("367d", None), ("0h", None)],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert durations.seconds(text) == seconds


def test_notify_needs_a_connection_and_addresses(tmp_path: Path) -> None:
    path = _plan(tmp_path, AUTO, "\nnotify:\n  connection: smtp_ops\n  to: [not-an-address]\n")
    problems = _problems(path)
    assert any(re.match(r"notify\.to", f) for f in problems), problems


def test_notify_goes_somewhere(tmp_path: Path) -> None:
    nowhere = _plan(tmp_path, AUTO, "\nnotify:\n  events: [failure]\n")
    assert any("name an smtp `connection`" in m for m in _problems(nowhere).values())
    only_hook = _plan(tmp_path, AUTO, "\nnotify:\n  webhook: slack_ops\n")
    assert load_plan(only_hook).notify is not None
    header = read_header(only_hook).ops.notify
    assert header is not None
    assert (header.connection, header.webhook) == (None, "slack_ops")
