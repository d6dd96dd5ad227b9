"""Reading a plan file: its size, its encoding and its YAML (syntax, duplicate keys, tags,
and a bound on what aliases expand to), every problem located. Only YAML is imported here:
the DAG factory reads plan headers with it at parse time."""

from __future__ import annotations

import codecs
import re
import typing
from typing import Any

import yaml

from retirement.errors import PlanError, PlanIssue

if typing.TYPE_CHECKING:
    from pathlib import Path

Loc = tuple[str | int, ...]

MAX_PLAN_BYTES = 4 * 1024 * 1024  # plans are a few KiB; a larger file is refused unparsed
MAX_NODES = 100_000  # plans have hundreds; aliases can make a short file expand to billions
MAX_DEPTH = 64  # plans nest about 6 levels; an alias inside its own anchor nests forever


# Friendlier words for the constrained string types used in the model.
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
            event = self.current_event  # check_event() has parsed it
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
