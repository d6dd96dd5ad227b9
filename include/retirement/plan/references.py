"""Cross-references of a plan: problems between parts that each validated alone (an
undefined destination, a class with no disposition, ...), checked on the raw mapping so
they are found also beside type errors, skipping what the model refused."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, TypeAlias

from retirement.plan.model import ACTIONS, rewrite_problem

if typing.TYPE_CHECKING:
    from collections.abc import Collection

    from retirement.plan.reading import Loc


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


Problem: TypeAlias = "tuple[Loc, str, object]"  # where, what is wrong, the value found there


def cross_check(data: Any, bad: Collection[Loc] = ()) -> list[Problem]:
    """Problems between parts of a plan: ``data`` is its mapping, raw or dumped from the model.

    ``bad`` lists where the model found errors: a check whose inputs are there is skipped,
    so what it reports adds to the model's problems instead of repeating them."""
    raw = _Raw(data, set(bad), {loc[:end] for loc in bad for end in range(len(loc))})
    out: list[Problem] = []
    source_column = raw.column("sources", "name")
    out += _duplicates(source_column, "sources", "name", "source name")
    out += _duplicates(raw.column("datasets", "dataset"), "datasets", "dataset", "dataset")
    usable = raw.sound("sources") and all(isinstance(s, str) for s in source_column)
    dispositions = raw.names("dispositions")
    out += _check_rules(raw, set(source_column) if usable else None, dispositions)
    out += _check_rewrites(raw)
    out += _check_classes(raw, dispositions)
    destinations, recipients = raw.names("destinations"), raw.names("recipients")
    for name, disp in (dispositions or {}).items():
        if raw.sound("dispositions", name) and isinstance(disp, dict):
            out += _check_disposition(raw, name, disp, destinations, recipients)
    for name, dest in (destinations or {}).items():
        if raw.sound("destinations", name) and isinstance(dest, dict):
            out += _check_destination(raw, name, dest)
    from retirement.plan.assessments import check_assessments

    checks = _check_approval(raw) + _check_approval_wait(raw)
    return out + checks + check_assessments(raw, dispositions)


def _check_rules(
    raw: _Raw, source_names: set[str] | None, dispositions: dict[str, Any] | None
) -> list[Problem]:
    """Each ``datasets`` rule names a defined source and a defined disposition."""
    out: list[Problem] = []
    rule_dispositions = raw.column("datasets", "disposition")
    for i, dataset in enumerate(raw.column("datasets", "dataset")):
        if (
            isinstance(dataset, str)
            and source_names is not None
            and _source_name(dataset) not in source_names
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
    return out


def _check_rewrites(raw: _Raw) -> list[Problem]:
    """A rule's ``rewrite`` fits the kind of its dataset's source."""
    kinds = dict(zip(raw.column("sources", "name"), raw.column("sources", "kind"), strict=True))
    out: list[Problem] = []
    rewrites = raw.column("datasets", "rewrite")
    for i, dataset in enumerate(raw.column("datasets", "dataset")):
        kind = kinds.get(_source_name(dataset)) if isinstance(dataset, str) else None
        problem = rewrite_problem(kind, rewrites[i]) if isinstance(kind, str) else None
        if problem:
            out.append((("datasets", i, "rewrite"), problem, rewrites[i]))
    return out


def _check_approval(raw: _Raw) -> list[Problem]:
    """Someone approves the deletion, unless the plan says that nobody needs to."""
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
        return [
            (
                ("approval", "approvers"),
                "at least one approver is required (or set "
                "approval.auto_approve: true, which is recorded as such)",
                None,
            )
        ]
    return []


def _check_approval_wait(raw: _Raw) -> list[Problem]:
    """An approval that may wait longer than the whole run would be ended by the run."""
    from retirement.plan.durations import seconds
    from retirement.plan.operations import DEFAULT_TIMEOUTS

    wait = raw.get("approval", "timeout")
    run = raw.get("retries", "timeouts", "run", default=DEFAULT_TIMEOUTS["run"])
    if not (raw.ok("approval", "timeout") and raw.ok("retries", "timeouts", "run")):
        return []
    waited, limit = seconds(wait), seconds(run)
    if waited is None or limit is None or waited < limit:
        return []
    return [
        (
            ("approval", "timeout"),
            f"is not shorter than retries.timeouts.run ({run}): the run would end first",
            wait,
        )
    ]


def _check_classes(raw: _Raw, dispositions: dict[str, Any] | None) -> list[Problem]:
    out: list[Problem] = []
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


# The parts only one action has: (part, that action, why it needs it, whether a stray value is
# quoted in the problem).
_OWNED_PARTS = (
    (
        "recipient",
        "transfer",
        "PIPL Art. 22: customers are told the recipient's name and contact",
        True,
    ),
    ("retention", "retain", "years or permanent, and its legal_basis", False),
)


def _check_disposition(
    raw: _Raw,
    name: str,
    disp: dict[str, Any],
    destinations: dict[str, Any] | None,
    recipients: dict[str, Any] | None,
) -> list[Problem]:
    """A disposition's destinations are defined, and it has exactly the parts its action
    needs: destinations for a retain or a transfer, a recipient that is defined for a
    transfer, a retention of years or permanent for a retain."""
    here: Loc = ("dispositions", name)
    action = disp.get("action") if raw.ok(*here, "action") else None
    if action not in ACTIONS:
        action = None  # the model says what is wrong with it
    out = _check_destinations(raw, here, disp, action, destinations)
    for part, owner, why, shown in _OWNED_PARTS:
        value = disp.get(part)
        problem = _owned_part(raw, (*here, part), action, value, owner=owner, why=why, shown=shown)
        if problem is not None:
            out.append(problem)
        elif action == owner and part == "recipient":
            out += _undefined_recipient(raw, here, value, recipients)
        elif action == owner and part == "retention":
            out += _years_or_permanent(raw, here, value)
    return out


def _check_destinations(
    raw: _Raw,
    here: Loc,
    disp: dict[str, Any],
    action: str | None,
    destinations: dict[str, Any] | None,
) -> list[Problem]:
    dests = disp.get("destinations", ())
    if not (raw.sound(*here, "destinations") and isinstance(dests, list | tuple)):
        return []
    out: list[Problem] = [
        ((*here, "destinations", j), _undefined("destination", destinations), dest)
        for j, dest in enumerate(dests)
        if destinations is not None
        and isinstance(dest, str)
        and raw.ok(*here, "destinations", j)
        and dest not in destinations
    ]
    if action in ("retain", "transfer") and not dests:
        out.append(
            (
                (*here, "destinations"),
                f"a {action} disposition needs at least one destination",
                None,
            )
        )
    return out


def _owned_part(
    raw: _Raw, where: Loc, action: str | None, value: object, *, owner: str, why: str, shown: bool
) -> Problem | None:
    """The part at ``where`` (holding ``value``) that only the ``owner`` action has: missing
    from a disposition of that action, or present in one of another known action (an unknown
    action the model reports). ``shown``: a stray value is quoted in the problem, so it must
    be one the model accepted."""
    part = where[-1]
    if action == owner and value is None:
        return (where, f"a {owner} disposition needs a {part} ({why})", None)
    if (
        action is not None
        and action != owner
        and value is not None
        and (not shown or raw.ok(*where))
    ):
        message = f"only a {owner} disposition has a {part}, not {action}"
        return (where, message, value if shown else None)
    return None


def _undefined_recipient(
    raw: _Raw, here: Loc, recipient: object, recipients: dict[str, Any] | None
) -> list[Problem]:
    if (
        raw.ok(*here, "recipient")
        and isinstance(recipient, str)
        and recipients is not None
        and recipient not in recipients
    ):
        return [((*here, "recipient"), _undefined("recipient", recipients), recipient)]
    return []


def _years_or_permanent(raw: _Raw, here: Loc, retention: object) -> list[Problem]:
    if (
        raw.sound(*here, "retention")
        and raw.ok(*here, "retention", "years")
        and raw.ok(*here, "retention", "permanent")
        and isinstance(retention, dict)
        and (retention.get("years") is None) == (not retention.get("permanent", False))
    ):
        return [((*here, "retention"), "give exactly one of years: N or permanent: true", None)]
    return []


_DESTINATION_NEEDS = {"sftp": ("connection",), "s3": ("connection", "bucket"), "local": ("path",)}


def _check_destination(raw: _Raw, name: str, dest: dict[str, Any]) -> list[Problem]:
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


def _duplicates(values: list[Any], section: str, field: str, what: str) -> list[Problem]:
    seen: dict[str, int] = {}
    out: list[Problem] = []
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


def _source_name(dataset: str) -> str:
    """The source part of a rule's dataset as written (``source.object``; source names hold
    no dot), read also from a dataset the model will refuse, to report what else is wrong."""
    return dataset.split(".", 1)[0]
