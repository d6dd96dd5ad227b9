"""pydantic's errors in our words: every error type a plan can trigger, with what was
expected and what the file has instead (pydantic's own wording never reaches a user)."""

from __future__ import annotations

import re
import types
import typing
from datetime import date
from typing import Any

from pydantic import BaseModel

from retirement.errors import PlanIssue
from retirement.plan.model import Plan
from retirement.plan.reading import Loc, _dotted, _line_of

_PATTERN_HINTS = {
    r"^[a-z][a-z0-9_]{0,62}$": "expected a lowercase name: a letter, then letters, digits or _",
    r"^[A-Za-z0-9_.-]{1,250}$": (
        "expected an Airflow connection id (letters, digits, _ . -); never a URL or a "
        "credential: credentials belong in the Airflow connection"
    ),
    r"^[a-z][a-z0-9_]*\..+$": "expected '<source>.<dataset>', e.g. crm.customers",
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "expected an e-mail address",
}

# Every pydantic error a plan can trigger, in our words ({got}: what the file has instead).
_BOOL = "expected true or false (YAML booleans), not {got}"
_WHOLE = "expected a whole number, not {got}"
_NUMBER = "expected a number, not {got}"
_MAPPING = "expected a mapping of keys, not {got}"
_LIST = "expected a list, not {got}"
_MESSAGES = {
    "missing": "required key is missing",
    "too_short": "expected at least {min_length} item{s}",
    "too_long": "expected at most {max_length} item{s}",
    "string_too_short": "expected at least {min_length} character{s}",
    "string_too_long": "expected at most {max_length} character{s}",
    "string_type": "expected text, not {got}",
    "string_unicode": "expected text, not {got}",
    "int_type": _WHOLE,
    "int_parsing": _WHOLE,
    "int_from_float": _WHOLE,
    "bool_type": _BOOL,
    "bool_parsing": _BOOL,
    "float_type": _NUMBER,
    "float_parsing": _NUMBER,
    "finite_number": "expected a finite number",
    "greater_than": "expected a number greater than {gt}",
    "greater_than_equal": "expected a number no less than {ge}",
    "less_than": "expected a number less than {lt}",
    "less_than_equal": "expected a number no greater than {le}",
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "list_type": _LIST,
    "tuple_type": _LIST,
    "set_type": _LIST,
    "iterable_type": _LIST,
    "none_required": "expected nothing (null), not {got}",
    "invalid_key": "a key must be text, not {got}",
    "union_tag_invalid": "not one of the forms allowed here",
    "union_tag_not_found": "not one of the forms allowed here",
    "date_type": "expected a date (YYYY-MM-DD), not {got}",
    "date_parsing": "expected a date (YYYY-MM-DD), not {got}",
    "date_from_datetime_parsing": "expected a date (YYYY-MM-DD), not {got}",
    "date_from_datetime_inexact": "expected a date (YYYY-MM-DD) without a time of day",
}


def _loc(err: Any) -> Loc:
    return tuple(p for p in err["loc"] if p != "[key]")


def _issue_from_pydantic(name: str, lines: dict[Loc, int], loc: Loc, err: Any) -> PlanIssue:
    value = err.get("input")
    if err["type"] in ("extra_forbidden", "missing"):
        value = None
    if isinstance(value, dict | list | set) or (loc and loc[-1] == "connection"):
        value = None  # a sub-tree is no help in one line; a connection may hold a secret
    return PlanIssue(name, _line_of(lines, loc), _dotted(loc), _message(loc, err), value)


def _message(loc: Loc, err: Any) -> str:
    """What is wrong, in our words: pydantic's ("Input should be ...") never reaches users."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(ctx["pattern"], f"expected text matching {ctx['pattern']}")
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"]).removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return "expected one of: " + ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
    template = _MESSAGES.get(kind)
    if template is None:
        return f"not valid here ({_kind_of(err.get('input'))})"
    count = ctx.get("min_length", ctx.get("max_length"))
    return template.format(**ctx, s="" if count == 1 else "s", got=_kind_of(err.get("input")))


def _kind_of(value: object) -> str:
    """What a YAML value is, as the plan's author would say it."""
    if value is None:
        return "nothing (null)"
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),  # before int: a bool is an int
        (int, "a whole number"),
        (float, "a decimal number"),
        (str, "a string"),
        (dict, "a mapping"),
        ((list, tuple, set), "a list"),
        (date, "a date"),
        (bytes, "binary data"),
    ]
    return next((words for tp, words in kinds if isinstance(value, tp)), type(value).__name__)


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
