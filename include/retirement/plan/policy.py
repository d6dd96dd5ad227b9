"""Classification policy: detected identifier types -> PIPL classes -> data grades.

Policy, not code: the defaults ship in ``defaults/classification.yaml`` and a plan overrides
any part (national guidance moved in 2024 and will move again).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Escalation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_class: str = Field(alias="from")
    min_rows: int = Field(gt=0)
    to: str


class CustomDetector(BaseModel):
    """A detector a plan adds: a regex, optionally checked by a named validator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str = Field(min_length=1)
    validator: str | None = None

    @model_validator(mode="after")
    def _compiles(self) -> CustomDetector:
        from retirement.inventory.detect import custom_detector

        custom_detector("custom", self.pattern, self.validator)  # raises ValueError if wrong
        return self


class ClassificationPolicy(BaseModel):
    """Which class each detected type gets, how classes order and grade, when to escalate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...] = Field(min_length=1)
    grades: dict[str, str]
    detectors: dict[str, str]
    min_hit_ratio: float = Field(gt=0, le=1)
    sample_rows: int = Field(gt=0)
    escalate: tuple[Escalation, ...] = ()
    documents: str = "sensitive"
    found_min_ratio: dict[str, float] = Field(default_factory=dict)
    custom_detectors: dict[str, CustomDetector] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _classes_are_known(self) -> ClassificationPolicy:
        known = set(self.classes)
        used = {
            **{f"detectors.{k}": v for k, v in self.detectors.items()},
            **{f"grades.{k}": k for k in self.grades},
            "documents": self.documents,
        }
        for i, rule in enumerate(self.escalate):
            used[f"escalate.{i}.from"] = rule.from_class
            used[f"escalate.{i}.to"] = rule.to
        unknown = {where: cls for where, cls in used.items() if cls not in known}
        if unknown:
            where, cls = next(iter(sorted(unknown.items())))
            raise ValueError(
                f"{where} names class {cls!r}; expected one of {', '.join(self.classes)}"
            )
        missing = known - set(self.grades)
        if missing:
            raise ValueError(f"grades has no grade for class {', '.join(sorted(missing))}")
        return self

    def detectors_used(self) -> dict[str, Any]:
        """The built-in detectors plus the plan's own, by name."""
        from retirement.inventory.detect import BUILTIN, custom_detector

        extra = {
            n: custom_detector(n, d.pattern, d.validator) for n, d in self.custom_detectors.items()
        }
        return {**BUILTIN, **extra}

    def escalated(self, data_class: str, rows: int) -> str:
        """The class after the escalation rules for a dataset of ``rows`` rows."""
        for rule in self.escalate:
            if rule.from_class == data_class and rows >= rule.min_rows:
                return rule.to
        return data_class

    @classmethod
    def default(cls) -> ClassificationPolicy:
        return cls.model_validate(default_policy_data())

    def class_of(self, detector: str | None) -> str:
        """The class of a column whose values matched ``detector`` (None: lowest class)."""
        if detector is None:
            return self.classes[0]
        return self.detectors.get(detector, self.classes[min(1, len(self.classes) - 1)])

    def highest(self, classes: list[str] | tuple[str, ...]) -> str:
        """The highest of ``classes`` in policy order (就高从严); the lowest class if empty."""
        ranks = [self.classes.index(c) for c in classes]
        return self.classes[max(ranks, default=0)]


@cache
def _default_text() -> str:
    return resources.files("retirement.plan").joinpath("defaults/classification.yaml").read_text()


def default_policy_data() -> dict[str, Any]:
    """A fresh copy of the shipped default policy as plain data."""
    data: dict[str, Any] = yaml.safe_load(_default_text())
    return data


def merge(base: Any, override: Any) -> Any:
    """Deep-merge ``override`` onto ``base``: maps key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return override
