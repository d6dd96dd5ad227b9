"""Cross-checks of a plan's legal parts: a transfer of sensitive personal information needs
its impact assessment (PIPL Art. 55-56), and only a transfer has a transfer's legal basis
(PIPL Art. 22) or an impact assessment. Checked on the raw mapping, as in ``references``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retirement.plan.references import Problem, _Raw

IMPACT_WHY = (
    "PIPL Art. 55-56: a transfer of sensitive personal information needs a personal-"
    "information protection impact assessment: name its report (file) and sha256"
)


def sensitive_classes(classes: list[str] | tuple[str, ...]) -> list[str]:
    """The classes of sensitive personal information: every class above the lowest."""
    return list(classes[1:])


def check_assessments(raw: _Raw, dispositions: dict[str, Any] | None) -> list[Problem]:
    out: list[Problem] = []
    for name, disp in (dispositions or {}).items():
        if not (raw.sound("dispositions", name) and isinstance(disp, dict)):
            continue
        action = disp.get("action") if raw.ok("dispositions", name, "action") else None
        if action in (None, "transfer"):
            continue
        if disp.get("impact_assessment") is not None:
            out.append(
                (
                    ("dispositions", name, "impact_assessment"),
                    f"only a transfer disposition has an impact_assessment, not {action}",
                    None,
                )
            )
        basis = disp.get("legal_basis")
        if isinstance(basis, dict) and basis.get("transfer") is not None:
            out.append(
                (
                    ("dispositions", name, "legal_basis", "transfer"),
                    f"only a transfer disposition has a transfer's legal basis, not {action}",
                    None,
                )
            )
    return out + _unassessed(raw, dispositions)


def _unassessed(raw: _Raw, dispositions: dict[str, Any] | None) -> list[Problem]:
    """Every sensitive class that ``by_class`` sends to a transfer without an assessment."""
    classes = raw.get("classification", "classes")
    by_class = raw.get("by_class")
    if not (
        dispositions is not None
        and raw.ok("classification", "classes")
        and isinstance(classes, list | tuple)
        and raw.sound("by_class")
        and isinstance(by_class, dict)
    ):
        return []
    out: list[Problem] = []
    for cls in sensitive_classes(classes):
        name = by_class.get(cls)
        if not isinstance(name, str):
            continue
        disp = dispositions.get(name)
        if not (isinstance(disp, dict) and raw.ok("dispositions", name, "action")):
            continue
        if disp.get("action") == "transfer" and disp.get("impact_assessment") is None:
            out.append(
                (
                    ("dispositions", name, "impact_assessment"),
                    f"class {cls} goes to this transfer (by_class.{cls}): {IMPACT_WHY}",
                    None,
                )
            )
    return out
