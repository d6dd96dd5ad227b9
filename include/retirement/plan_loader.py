"""Load a plan from YAML and report every problem with file, line, field, value and expectation.

Three passes, each collecting all problems before raising one :class:`PlanError`:
YAML syntax and duplicate keys, then the pydantic model, then cross-references
(an undefined destination, a class with no disposition, ...).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from retirement.errors import PlanError, PlanIssue
from retirement.plan import Plan, plan_sha256
from retirement.policy import default_policy_data, merge

if typing.TYPE_CHECKING:
    from pathlib import Path

Loc = tuple[str | int, ...]

# Friendlier words for the constrained string types used in the model.
_PATTERN_HINTS = {
    r"^[a-z][a-z0-9_]{0,62}$": "expected a lowercase name: a letter, then letters, digits or _",
    r"^[A-Za-z0-9_.-]{1,250}$": (
        "expected an Airflow connection id (letters, digits, _ . -); never a URL or a "
        "credential: credentials belong in the Airflow connection"
    ),
    r"^[a-z][a-z0-9_]*\.[^\s]+$": "expected '<source>.<dataset>', e.g. crm.customers",
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "expected an e-mail address",
}


def load(path: Path) -> Plan:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(
            [PlanIssue(name, None, "(file)", f"cannot read plan: {exc.strerror}")]
        ) from exc
    text = raw.decode("utf-8", errors="replace")
    data, lines = _parse_yaml(name, text)
    if not isinstance(data, dict):
        raise PlanError([PlanIssue(name, 1, "(top)", "expected a mapping of plan keys")])
    data = dict(data)
    data["classification"] = merge(default_policy_data(), data.get("classification") or {})
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError([_issue_from_pydantic(name, lines, err) for err in exc.errors()]) from None
    problems = [
        PlanIssue(name, _line_of(lines, loc), _dotted(loc), message, value)
        for loc, message, value in cross_check(plan)
    ]
    if problems:
        raise PlanError(problems)
    return plan.model_copy(update={"source_file": name, "sha256": plan_sha256(raw)})


# ---------------------------------------------------------------------------- YAML


def _parse_yaml(name: str, text: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise PlanError(
            [PlanIssue(name, line, "(syntax)", f"invalid YAML: {exc.problem}")]
        ) from None
    if node is None:
        raise PlanError([PlanIssue(name, None, "(top)", "the plan file is empty")])
    lines: dict[Loc, int] = {}
    duplicates: list[PlanIssue] = []
    _walk(node, (), lines, duplicates, name)
    if duplicates:
        raise PlanError(duplicates)
    return yaml.safe_load(text), lines


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], dups: list[PlanIssue], name: str
) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dups.append(
                    PlanIssue(
                        name,
                        key_node.start_mark.line + 1,
                        _dotted((*loc, key)),
                        "duplicate key: YAML would silently keep only the last one",
                    )
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines, dups, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, dups, name)


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


# ---------------------------------------------------------------------------- pydantic


def _issue_from_pydantic(name: str, lines: dict[Loc, int], err: Any) -> PlanIssue:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
        value = None
    elif kind == "missing":
        message = "required key is missing"
        value = None
    elif kind == "string_pattern_mismatch":
        message = _PATTERN_HINTS.get(err["ctx"]["pattern"], err["msg"])
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = err["msg"].replace("Input should be", "expected")
    if isinstance(value, dict | list) or (loc and loc[-1] == "connection"):
        value = None  # a sub-tree is no help in one line; a connection may hold a secret
    return PlanIssue(name, _line_of(lines, loc), _dotted(loc), message, value)


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (used to suggest the right spelling)."""
    model: Any = Plan
    for part in loc:
        model = _step(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [
            f.alias or n
            for n, f in model.model_fields.items()
            if n not in {"source_file", "sha256"}
        ]
    return []


def _step(model: Any, part: str | int) -> Any:
    model = _unwrap_optional(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        for field_name, field in model.model_fields.items():
            if part in (field_name, field.alias):
                return _unwrap_optional(field.annotation)
        return None
    origin, args = typing.get_origin(model), typing.get_args(model)
    if origin is tuple and args:
        return _unwrap_optional(args[0])
    if origin is dict and len(args) == 2:
        return _unwrap_optional(args[1])
    return None


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    if typing.get_origin(tp) is typing.Annotated:
        return typing.get_args(tp)[0]
    return tp


# ---------------------------------------------------------------------------- references


def cross_check(plan: Plan) -> list[tuple[Loc, str, object]]:
    """Problems between parts of a plan that each validated alone."""
    out: list[tuple[Loc, str, object]] = []
    out += _duplicates([s.name for s in plan.sources], "sources", "name", "source name")
    out += _duplicates([r.dataset for r in plan.datasets], "datasets", "dataset", "dataset")
    source_names = {s.name for s in plan.sources}
    for i, rule in enumerate(plan.datasets):
        if rule.dataset.split(".", 1)[0] not in source_names:
            out.append(
                (
                    ("datasets", i, "dataset"),
                    f"names undefined source; expected one of: {', '.join(sorted(source_names))}",
                    rule.dataset,
                )
            )
        if rule.disposition not in plan.dispositions:
            out.append(
                (
                    ("datasets", i, "disposition"),
                    _undefined("disposition", plan.dispositions),
                    rule.disposition,
                )
            )
    classes = plan.classification.classes
    for cls, disposition in plan.by_class.items():
        if cls not in classes:
            out.append(
                (("by_class", cls), f"unknown class; expected one of: {', '.join(classes)}", cls)
            )
        elif disposition not in plan.dispositions:
            out.append(
                (("by_class", cls), _undefined("disposition", plan.dispositions), disposition)
            )
    missing = [c for c in classes if c not in plan.by_class]
    if missing:
        out.append(
            (
                ("by_class",),
                f"no disposition for class {', '.join(missing)}; every class "
                f"({', '.join(classes)}) needs one",
                None,
            )
        )
    for name, disp in plan.dispositions.items():
        out += _check_disposition(plan, name, disp)
    for name, dest in plan.destinations.items():
        out += _check_destination(name, dest)
    if not plan.approval.approvers and not plan.approval.auto_approve:
        out.append(
            (
                ("approval", "approvers"),
                "at least one approver is required (or set "
                "approval.auto_approve: true, which is recorded as such)",
                None,
            )
        )
    return out


def _check_disposition(plan: Plan, name: str, disp: Any) -> list[tuple[Loc, str, object]]:
    out: list[tuple[Loc, str, object]] = []
    here: Loc = ("dispositions", name)
    for j, dest in enumerate(disp.destinations):
        if dest not in plan.destinations:
            out.append(
                ((*here, "destinations", j), _undefined("destination", plan.destinations), dest)
            )
    if disp.action in ("retain", "transfer") and not disp.destinations:
        out.append(
            (
                (*here, "destinations"),
                f"a {disp.action} disposition needs at least one destination",
                None,
            )
        )
    if disp.action == "transfer":
        if disp.recipient is None:
            out.append(
                (
                    (*here, "recipient"),
                    "a transfer disposition needs a recipient "
                    "(PIPL Art. 22: customers are told the recipient's name and contact)",
                    None,
                )
            )
        elif disp.recipient not in plan.recipients:
            out.append(
                ((*here, "recipient"), _undefined("recipient", plan.recipients), disp.recipient)
            )
    elif disp.recipient is not None:
        out.append(
            (
                (*here, "recipient"),
                f"only a transfer disposition has a recipient, not {disp.action}",
                disp.recipient,
            )
        )
    if disp.action == "retain":
        ret = disp.retention
        if ret is None:
            out.append(
                (
                    (*here, "retention"),
                    "a retain disposition needs a retention "
                    "(years or permanent, and its legal_basis)",
                    None,
                )
            )
        elif (ret.years is None) == (not ret.permanent):
            out.append(
                ((*here, "retention"), "give exactly one of years: N or permanent: true", None)
            )
    elif disp.retention is not None:
        out.append(
            (
                (*here, "retention"),
                f"only a retain disposition has a retention, not {disp.action}",
                None,
            )
        )
    return out


def _check_destination(name: str, dest: Any) -> list[tuple[Loc, str, object]]:
    here: Loc = ("destinations", name)
    needs = {"sftp": ("connection",), "s3": ("connection", "bucket"), "local": ("path",)}[dest.kind]
    return [
        ((*here, field), f"a {dest.kind} destination needs {field}", None)
        for field in needs
        if getattr(dest, field) in (None, "")
    ]


def _duplicates(
    values: list[str], section: str, field: str, what: str
) -> list[tuple[Loc, str, object]]:
    seen: dict[str, int] = {}
    out: list[tuple[Loc, str, object]] = []
    for i, value in enumerate(values):
        if value in seen:
            out.append(
                (
                    (section, i, field),
                    f"duplicate {what}: already defined at {section}.{seen[value]}",
                    value,
                )
            )
        seen.setdefault(value, i)
    return out


def _undefined(what: str, defined: dict[str, Any]) -> str:
    names = ", ".join(sorted(defined)) or f"(none: add a {what}s section)"
    return f"undefined {what}; expected one of: {names}"
