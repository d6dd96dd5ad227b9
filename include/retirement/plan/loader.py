"""Load a plan from YAML and report every problem with file, line, field, value and expectation.

Three passes, each collecting all problems before raising one :class:`PlanError`:
the file (size, encoding) and its YAML (syntax, duplicate keys, tags, aliases), then the
pydantic model, then cross-references (an undefined destination, a class with no
disposition, ...). The cross-references are checked also when the model found problems,
on the raw mapping and skipping what the model refused, so one run lists both.
"""

from __future__ import annotations

import codecs
import re
import types
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from retirement.errors import PlanError, PlanIssue
from retirement.plan.model import ACTIONS, MAX_PLAN_BYTES, Plan, plan_sha256
from retirement.plan.policy import default_policy_data, merge

if typing.TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path

Loc = tuple[str | int, ...]

MAX_NODES = 100_000  # plans have hundreds; aliases can make a short file expand to billions
MAX_DEPTH = 64  # plans nest about 6 levels; an alias inside its own anchor nests forever

# Friendlier words for the constrained string types used in the model.
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
}


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


def read_bytes(path: Path) -> bytes:
    """The bytes of the plan file at ``path``; PlanError if unreadable or larger than a plan."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise _fail(str(path), None, "(file)", f"cannot read plan: {exc.strerror}") from exc
    if len(raw) > MAX_PLAN_BYTES:
        raise _fail(
            str(path),
            None,
            "(file)",
            f"the plan is larger than {MAX_PLAN_BYTES // 2**20} MiB: plans are a few KiB",
        )
    return raw


_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_WIDE_CODECS = (
    ("utf-32-le", "UTF-32"),
    ("utf-32-be", "UTF-32"),
    ("utf-16-le", "UTF-16"),
    ("utf-16-be", "UTF-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _decode(name: str, raw: bytes) -> str:
    """The text of a plan file: UTF-8, with or without a byte order mark."""
    wide = _wide_encoding(raw)
    if wide:
        raise _fail(name, None, "(file)", f"the plan is {wide}: save it as UTF-8")
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise _fail(name, line, "(file)", "the plan is not a text file (it holds NUL bytes)")
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(raw) - len(body)
        line = raw[:offset].count(b"\n") + 1
        message = f"not valid UTF-8 at byte offset {offset} (0x{raw[offset]:02x}): save it as UTF-8"
        raise _fail(name, line, "(file)", message) from None


def _wide_encoding(raw: bytes) -> str | None:
    """'UTF-16' or 'UTF-32' if ``raw`` is in one: a byte order mark, or NUL bytes and text
    without control characters once decoded (ASCII in UTF-16 is every other byte NUL)."""
    for bom, label in _WIDE_BOMS:
        if raw.startswith(bom):
            return label
    if b"\0" not in raw:
        return None
    for codec, label in _WIDE_CODECS:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if not _CONTROL.search(text):
            return label
    return None


# ---------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """The safe loader, remembering each alias it resolves and reporting a scalar it cannot
    construct (``!!int x``, a timestamp in month 13) where it is, not as a traceback."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: dict[str, int] = {}  # anchor -> line of its first alias

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self.aliases.setdefault(event.anchor, event.start_mark.line + 1)
        return super().compose_node(parent, index)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as exc:
            problem = f"cannot read {node.value!r} as {_short_tag(node.tag)}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


def parse(name: str, raw: bytes) -> tuple[Any, dict[Loc, int], list[PlanIssue]]:
    """The data of a plan file, the line of each field path and the duplicate keys.

    Raises PlanError when the file cannot be read as a plan's YAML at all: not UTF-8 text,
    invalid or empty YAML, a tag the safe loader cannot construct, or too many nodes."""
    text = _decode(name, raw)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        problem = f"invalid YAML: character U+{exc.character:04X} is not allowed"
        raise _fail(name, line, "(syntax)", problem) from None
    try:
        node = _yaml_step(name, loader.get_single_node)
        if node is None:
            raise _fail(name, None, "(top)", "the plan file is empty")
        walk = _Walk(name)
        try:
            walk.node(node, ())
        except _TooBig as exc:
            raise PlanError([exc.issue(name, loader.aliases)]) from None
        if walk.tags:
            raise PlanError(sorted(walk.tags + walk.duplicates, key=lambda i: i.line or 0))
        data = _yaml_step(name, lambda: loader.construct_document(node))
    finally:
        loader.dispose()
    return data, walk.lines, walk.duplicates


def _yaml_step(name: str, step: typing.Callable[[], Any]) -> Any:
    try:
        return step()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise _fail(name, line, "(syntax)", f"invalid YAML: {exc.problem}") from None
    except RecursionError:
        raise _fail(name, None, "(syntax)", "the plan nests too deeply") from None


class _TooBig(Exception):
    def __init__(self, what: str) -> None:
        self.what = what

    def issue(self, name: str, aliases: dict[str, int]) -> PlanIssue:
        shown = ", ".join(f"*{anchor}" for anchor in list(aliases)[:5])
        more = " ..." if len(aliases) > 5 else ""
        through = f" (through aliases {shown}{more})" if aliases else ""
        line = min(aliases.values()) if aliases else None
        return PlanIssue(
            name, line, "(file)", f"the plan {self.what}{through}: plans do not need that"
        )


class _Walk:
    """One pass over the composed YAML, through aliases: the line of each field path, the
    duplicate keys and the tags the safe loader cannot construct; at most MAX_NODES nodes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[PlanIssue] = []
        self.tags: list[PlanIssue] = []
        self.count = 0
        self.seen: set[int] = set()  # nodes already checked (a node met again: through an alias)

    def node(self, node: yaml.Node, loc: Loc) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(f"expands to more than {MAX_NODES:,} YAML nodes")
        if len(loc) > MAX_DEPTH:
            raise _TooBig(f"nests more than {MAX_DEPTH} levels deep")
        self.lines.setdefault(loc, node.start_mark.line + 1)
        first = id(node) not in self.seen
        self.seen.add(id(node))
        if first:
            self._check_tag(node, loc)
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # construction refuses it: a key must be a scalar
                key = key_node.value
                here = (*loc, key)
                if first:
                    self._check_tag(key_node, here)
                    if key in keys:
                        self.duplicates.append(
                            PlanIssue(
                                self.name,
                                key_node.start_mark.line + 1,
                                _dotted(here),
                                "duplicate key: YAML would silently keep only the last one",
                            )
                        )
                keys.add(key)
                self.lines[here] = key_node.start_mark.line + 1
                self.node(value_node, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.node(item, (*loc, i))

    def _check_tag(self, node: yaml.Node, loc: Loc) -> None:
        if node.tag not in _Loader.yaml_constructors:
            self.tags.append(
                PlanIssue(
                    self.name,
                    node.start_mark.line + 1,
                    _dotted(loc),
                    f"tag {_short_tag(node.tag)} is not allowed in a plan",
                )
            )


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def _fail(name: str, line: int | None, field: str, message: str) -> PlanError:
    return PlanError([PlanIssue(name, line, field, message)])


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


# ---------------------------------------------------------------------------- pydantic


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


# ---------------------------------------------------------------------------- references


@dataclass
class _Raw:
    """Defensive reads of a plan's mapping, and whether the model refused a part of it."""

    data: Any
    bad: set[Loc]  # where the model's errors are
    above: set[Loc]  # every proper prefix of those

    def get(self, *loc: str | int, default: Any = None) -> Any:
        value = self.data
        for part in loc:
            found = (
                part in value
                if isinstance(value, dict)
                else isinstance(value, list | tuple) and isinstance(part, int) and part < len(value)
            )
            if not found:
                return default
            value = value[part]
        return value

    def sound(self, *loc: str | int) -> bool:
        """No error at ``loc`` or around it (errors inside it are allowed)."""
        return not any(loc[:end] in self.bad for end in range(len(loc) + 1))

    def ok(self, *loc: str | int) -> bool:
        """No error at, around or inside ``loc``: a check may rely on its value."""
        return self.sound(*loc) and loc not in self.above

    def column(self, section: str, field: str) -> list[Any]:
        """``field`` of each item of the list ``section``, None where it is not usable."""
        items = self.get(section, default=())
        if not (self.sound(section) and isinstance(items, list | tuple)):
            return []
        return [
            self.get(section, i, field) if self.ok(section, i, field) else None
            for i in range(len(items))
        ]

    def names(self, section: str) -> dict[str, Any] | None:
        """The mapping ``section`` (its keys are the names it defines), None if not usable."""
        value = self.get(section, default={})
        if (
            self.sound(section)
            and isinstance(value, dict)
            and all(isinstance(k, str) for k in value)
        ):
            return value
        return None


def cross_check(data: Any, bad: Collection[Loc] = ()) -> list[tuple[Loc, str, object]]:
    """Problems between parts of a plan: ``data`` is its mapping, raw or dumped from the model.

    ``bad`` lists where the model found errors: a check whose inputs are there is skipped,
    so what it reports adds to the model's problems instead of repeating them."""
    raw = _Raw(data, set(bad), {loc[:end] for loc in bad for end in range(len(loc))})
    out: list[tuple[Loc, str, object]] = []
    source_column = raw.column("sources", "name")
    out += _duplicates(source_column, "sources", "name", "source name")
    out += _duplicates(raw.column("datasets", "dataset"), "datasets", "dataset", "dataset")
    usable = raw.sound("sources") and all(isinstance(s, str) for s in source_column)
    source_names = set(source_column) if usable else None
    dispositions = raw.names("dispositions")
    rule_dispositions = raw.column("datasets", "disposition")
    for i, dataset in enumerate(raw.column("datasets", "dataset")):
        if (
            isinstance(dataset, str)
            and source_names is not None
            and dataset.split(".", 1)[0] not in source_names
        ):
            out.append(
                (
                    ("datasets", i, "dataset"),
                    f"names undefined source; expected one of: {', '.join(sorted(source_names))}",
                    dataset,
                )
            )
        disposition = rule_dispositions[i]
        if (
            isinstance(disposition, str)
            and dispositions is not None
            and disposition not in dispositions
        ):
            out.append(
                (
                    ("datasets", i, "disposition"),
                    _undefined("disposition", dispositions),
                    disposition,
                )
            )
    out += _check_classes(raw, dispositions)
    destinations, recipients = raw.names("destinations"), raw.names("recipients")
    for name, disp in (dispositions or {}).items():
        if raw.sound("dispositions", name) and isinstance(disp, dict):
            out += _check_disposition(raw, name, disp, destinations, recipients)
    for name, dest in (destinations or {}).items():
        if raw.sound("destinations", name) and isinstance(dest, dict):
            out += _check_destination(raw, name, dest)
    approval = raw.get("approval", default={})
    approvers = raw.get("approval", "approvers", default=())
    if (
        raw.sound("approval", "approvers")
        and raw.ok("approval", "auto_approve")
        and isinstance(approval, dict)
        and isinstance(approvers, list | tuple)
        and not approvers
        and approval.get("auto_approve", False) is not True
    ):
        out.append(
            (
                ("approval", "approvers"),
                "at least one approver is required (or set "
                "approval.auto_approve: true, which is recorded as such)",
                None,
            )
        )
    return out


def _check_classes(raw: _Raw, dispositions: dict[str, Any] | None) -> list[tuple[Loc, str, object]]:
    out: list[tuple[Loc, str, object]] = []
    classes = raw.get("classification", "classes")
    by_class = raw.get("by_class")
    if not (
        raw.ok("classification", "classes")
        and isinstance(classes, list | tuple)
        and all(isinstance(c, str) for c in classes)
        and raw.sound("by_class")
        and isinstance(by_class, dict)
    ):
        return out
    for cls, disposition in by_class.items():
        if not isinstance(cls, str):
            continue
        if cls not in classes:
            out.append(
                (("by_class", cls), f"unknown class; expected one of: {', '.join(classes)}", cls)
            )
        elif (
            raw.ok("by_class", cls)
            and dispositions is not None
            and isinstance(disposition, str)
            and disposition not in dispositions
        ):
            out.append((("by_class", cls), _undefined("disposition", dispositions), disposition))
    missing = [c for c in classes if c not in by_class]
    if missing:
        out.append(
            (
                ("by_class",),
                f"no disposition for class {', '.join(missing)}; every class "
                f"({', '.join(classes)}) needs one",
                None,
            )
        )
    return out


def _check_disposition(
    raw: _Raw,
    name: str,
    disp: dict[str, Any],
    destinations: dict[str, Any] | None,
    recipients: dict[str, Any] | None,
) -> list[tuple[Loc, str, object]]:
    out: list[tuple[Loc, str, object]] = []
    here: Loc = ("dispositions", name)
    action = disp.get("action") if raw.ok(*here, "action") else None
    if action not in ACTIONS:
        action = None  # the model says what is wrong with it
    dests = disp.get("destinations", ())
    if raw.sound(*here, "destinations") and isinstance(dests, list | tuple):
        for j, dest in enumerate(dests):
            if (
                destinations is not None
                and isinstance(dest, str)
                and raw.ok(*here, "destinations", j)
                and dest not in destinations
            ):
                out.append(
                    ((*here, "destinations", j), _undefined("destination", destinations), dest)
                )
        if action in ("retain", "transfer") and not dests:
            out.append(
                (
                    (*here, "destinations"),
                    f"a {action} disposition needs at least one destination",
                    None,
                )
            )
    recipient = disp.get("recipient")
    if action == "transfer":
        if recipient is None:
            out.append(
                (
                    (*here, "recipient"),
                    "a transfer disposition needs a recipient "
                    "(PIPL Art. 22: customers are told the recipient's name and contact)",
                    None,
                )
            )
        elif (
            raw.ok(*here, "recipient")
            and isinstance(recipient, str)
            and recipients is not None
            and recipient not in recipients
        ):
            out.append(((*here, "recipient"), _undefined("recipient", recipients), recipient))
    elif action is not None and recipient is not None and raw.ok(*here, "recipient"):
        out.append(
            (
                (*here, "recipient"),
                f"only a transfer disposition has a recipient, not {action}",
                recipient,
            )
        )
    ret = disp.get("retention")
    if action == "retain":
        if ret is None:
            out.append(
                (
                    (*here, "retention"),
                    "a retain disposition needs a retention "
                    "(years or permanent, and its legal_basis)",
                    None,
                )
            )
        elif (
            raw.sound(*here, "retention")
            and raw.ok(*here, "retention", "years")
            and raw.ok(*here, "retention", "permanent")
            and isinstance(ret, dict)
            and (ret.get("years") is None) == (not ret.get("permanent", False))
        ):
            out.append(
                ((*here, "retention"), "give exactly one of years: N or permanent: true", None)
            )
    elif action is not None and ret is not None:
        out.append(
            (
                (*here, "retention"),
                f"only a retain disposition has a retention, not {action}",
                None,
            )
        )
    return out


_DESTINATION_NEEDS = {"sftp": ("connection",), "s3": ("connection", "bucket"), "local": ("path",)}


def _check_destination(raw: _Raw, name: str, dest: dict[str, Any]) -> list[tuple[Loc, str, object]]:
    here: Loc = ("destinations", name)
    kind = dest.get("kind")
    if not raw.ok(*here, "kind") or kind not in _DESTINATION_NEEDS:
        return []
    return [
        ((*here, field), f"a {kind} destination needs {field}", None)
        for field in _DESTINATION_NEEDS[kind]
        if raw.ok(*here, field) and _blank(dest.get(field))
    ]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _duplicates(
    values: list[Any], section: str, field: str, what: str
) -> list[tuple[Loc, str, object]]:
    seen: dict[str, int] = {}
    out: list[tuple[Loc, str, object]] = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            continue  # not usable: the model says why
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


def _undefined(what: str, defined: Collection[str]) -> str:
    names = ", ".join(sorted(defined)) or f"(none: add a {what}s section)"
    return f"undefined {what}; expected one of: {names}"
