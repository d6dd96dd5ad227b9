"""Load a plan from YAML and report every problem with file, line, field, value and expectation.

Three passes, each collecting all problems before raising one :class:`PlanError`:
the file (size, encoding) and its YAML (syntax, duplicate keys, tags, aliases:
:mod:`retirement.plan.reading`), then the pydantic model (:mod:`retirement.plan.messages`
words its errors), then cross-references (:mod:`retirement.plan.references`), checked also
when the model found problems, on the raw mapping and skipping what the model refused, so
one run lists both.
"""

from __future__ import annotations

import typing

from pydantic import ValidationError

from retirement.errors import PlanError, PlanIssue
from retirement.plan.messages import _issue_from_pydantic, _loc
from retirement.plan.model import Plan, plan_sha256
from retirement.plan.policy import default_policy_data, merge
from retirement.plan.reading import MAX_PLAN_BYTES, _dotted, _fail, _line_of, parse, read_bytes
from retirement.plan.references import cross_check

if typing.TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load", "load_bytes", "parse", "read_bytes"]


def load(path: Path) -> Plan:
    return load_bytes(str(path), read_bytes(path))


def load_bytes(name: str, raw: bytes) -> Plan:
    """The plan in ``raw`` (named ``name`` in every problem), validated and cross-checked."""
    if len(raw) > MAX_PLAN_BYTES:
        raise _fail(name, None, "(file)", f"the plan is larger than {MAX_PLAN_BYTES // 2**20} MiB")
    data, lines, duplicates = parse(name, raw)
    if duplicates:
        raise PlanError(duplicates)
    if not isinstance(data, dict):
        raise PlanError([PlanIssue(name, 1, "(top)", "expected a mapping of plan keys")])
    data = dict(data)
    data["classification"] = merge(default_policy_data(), data.get("classification") or {})
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        errors = [(_loc(err), err) for err in exc.errors()]
        problems = [_issue_from_pydantic(name, lines, loc, err) for loc, err in errors]
        references = cross_check(data, {loc for loc, _ in errors})
    else:
        problems = []
        references = cross_check(plan.model_dump(by_alias=True))
    problems += [
        PlanIssue(name, _line_of(lines, loc), _dotted(loc), message, value)
        for loc, message, value in references
    ]
    if problems:
        raise PlanError(sorted(problems, key=lambda issue: issue.line or 0))
    return plan.model_copy(update={"source_file": name, "sha256": plan_sha256(raw)})


# ---------------------------------------------------------------------------- the file
