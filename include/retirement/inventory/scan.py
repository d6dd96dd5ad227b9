"""Inventory: discover every dataset of a source, scan its values, classify it.

A column's type comes from its values (:mod:`retirement.inventory.detect`); its header may
add or take away confidence but never decides alone. A dataset takes the highest class of
its columns (就高从严), then the policy's escalation by size. Scanning streams batch by batch,
as Arrow columns through the column engine (:mod:`retirement.inventory.columns`). Each column
reports its hit ratio, the part of it where the cell is the identifier exactly, and the cells
holding identifiers inside longer text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from retirement.errors import SourceError
from retirement.inventory.columns import scan_columns
from retirement.sources.capabilities import ObjectSource

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from retirement.inventory.detect import ColumnScan, Detector
    from retirement.plan.policy import ClassificationPolicy
    from retirement.sources.base import Column, DatasetRef, Source

log = logging.getLogger(__name__)

# Header words that make a detector's type more likely (threshold lowered) ...
HEADER_HINTS: dict[str, tuple[str, ...]] = {
    "cn_resident_id": ("id_card", "idcard", "id_no", "id_number", "identity", "身份证", "证件"),
    "cn_uscc": ("uscc", "credit_code", "信用代码", "统一社会"),
    "bank_card": ("card", "bank", "account_no", "卡号", "账号", "银行"),
    "cn_mobile": ("mobile", "phone", "cell", "手机", "电话"),
    "cn_landline": ("tel", "phone", "landline", "电话", "座机"),
    "email": ("email", "e_mail", "mail", "邮箱"),
    "passport": ("passport", "护照"),
    "person_name": ("name", "姓名", "联系人", "客户"),
    "address": ("addr", "address", "地址", "住址"),
    "ip_address": ("ip", "remote_addr", "host"),
}
# ... and words that make any personal type less likely (threshold raised).
NON_PERSONAL_HINTS = (
    "order_no",
    "order_id",
    "sku",
    "product",
    "amount",
    "price",
    "qty",
    "quantity",
    "status",
    "total",
    "currency",
    "订单号",
    "金额",
)
HINT_BONUS = 0.3
NON_PERSONAL_PENALTY = 0.2
_WORD = re.compile(r"[^0-9a-z\u4e00-\u9fff]+")


@dataclass(frozen=True)
class ColumnReport:
    name: str
    type: str
    detected: str | None
    hit_ratio: float  # of the detected type on the full scan (0.0 when nothing detected)
    sample_hit_ratio: float
    data_class: str
    found: dict[str, int] = field(default_factory=dict)  # validated identifiers counted
    # Of the detected type: cells that are the identifier exactly (ratio of non-empty cells).
    whole_hit_ratio: float = 0.0
    # Per detector: cells holding an identifier inside longer text (free text, remarks).
    embedded: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "detected": self.detected,
            "hit_ratio": round(self.hit_ratio, 4),
            "sample_hit_ratio": round(self.sample_hit_ratio, 4),
            "class": self.data_class,
            "found": self.found,
            "whole_hit_ratio": round(self.whole_hit_ratio, 4),
            "embedded": self.embedded,
        }


@dataclass(frozen=True)
class DatasetReport:
    source: str
    name: str
    kind: str
    rows: int
    bytes: int | None
    data_class: str
    grade: str
    columns: tuple[ColumnReport, ...] = ()
    sha256: str | None = None
    disposition: str | None = None
    key: dict[str, Any] | None = None  # tables: {"columns", "planned", "problem"}

    @property
    def qualified(self) -> str:
        return f"{self.source}.{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "dataset": self.qualified,
            "kind": self.kind,
            "rows": self.rows,
            "bytes": self.bytes,
            "class": self.data_class,
            "grade": self.grade,
            "disposition": self.disposition,
            "sha256": self.sha256,
            "columns": [c.to_json() for c in self.columns],
            **({"key": self.key} if self.key is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetReport:
        cols = tuple(
            ColumnReport(
                c["name"],
                c.get("type", ""),
                c["detected"],
                c["hit_ratio"],
                c.get("sample_hit_ratio", c["hit_ratio"]),
                c["class"],
                dict(c.get("found", {})),
                c.get("whole_hit_ratio", c["hit_ratio"]),
                dict(c.get("embedded", {})),
            )
            for c in data.get("columns", [])
        )
        return cls(
            data["source"],
            data["name"],
            data["kind"],
            data["rows"],
            data.get("bytes"),
            data["class"],
            data["grade"],
            cols,
            data.get("sha256"),
            data.get("disposition"),
            data.get("key"),
        )


def _words(header: str) -> str:
    return "_" + _WORD.sub("_", header.lower()) + "_"


def header_hints(header: str) -> tuple[set[str], bool]:
    """(detectors the header suggests, whether it suggests non-personal data)."""
    words = _words(header)
    suggested = {
        d
        for d, hints in HEADER_HINTS.items()
        if any((f"_{h}_" in words) if h.isascii() else (h in words) for h in hints)
    }
    non_personal = any(
        (f"_{h}_" in words) if h.isascii() else (h in words) for h in NON_PERSONAL_HINTS
    )
    return suggested, non_personal


def decide_column(
    header: str,
    full: ColumnScan,
    sample: ColumnScan,
    policy: ClassificationPolicy,
    detectors: Mapping[str, Detector],
) -> tuple[str | None, dict[str, int]]:
    """The detected type of a column (or None) and the validated identifiers it holds."""
    suggested, non_personal = header_hints(header)
    best, best_ratio = None, 0.0
    for name in full.hits:
        ratio = full.ratio(name)
        threshold = policy.min_hit_ratio
        if name in suggested:
            threshold = max(0.2, threshold - HINT_BONUS)
        elif non_personal:
            threshold = min(0.95, threshold + NON_PERSONAL_PENALTY)
        if ratio >= threshold and ratio > best_ratio:
            best, best_ratio = name, ratio
    found = {
        name: hits
        for name, hits in full.hits.items()
        if hits
        and detectors[name].validated
        and full.ratio(name) >= policy.found_min_ratio.get(name, 0.0)
    }
    del sample  # reported, not decisive: the full scan decides
    return best, found


def scan_dataset(
    source: Source,
    ref: DatasetRef,
    policy: ClassificationPolicy,
    *,
    detectors: Mapping[str, Detector] | None = None,
    full: bool = True,
    on_rows: Callable[[int], None] | None = None,
) -> DatasetReport:
    """Scan one dataset and classify it. ``on_rows`` is told how many rows each batch had."""
    detectors = policy.detectors_used() if detectors is None else detectors
    if ref.kind == "document":
        if not isinstance(source, ObjectSource):
            raise SourceError(f"{ref.qualified}: a document, but {source.name} holds no objects")
        size, sha = source.digest(ref.id)
        cls = policy.documents
        return DatasetReport(
            ref.source, ref.name, "document", 1, size, cls, policy.grades[cls], sha256=sha
        )
    columns = source.schema(ref.id)
    full_scan, sample_scan, rows = scan_columns(
        source,
        ref,
        detectors,
        len(columns),
        policy.sample_rows,
        full=full,
        on_rows=on_rows,
        names=[c.name for c in columns],
    )
    reports = [
        _column_report(col, fs, ss, policy, detectors)
        for col, fs, ss in zip(columns, full_scan, sample_scan, strict=True)
    ]
    if not full:
        rows = source.count(ref.id)
    cls = policy.escalated(policy.highest([c.data_class for c in reports]), rows)
    return DatasetReport(
        ref.source,
        ref.name,
        "table",
        rows,
        source.byte_size(ref.id),
        cls,
        policy.grades[cls],
        tuple(reports),
    )


def _column_report(
    col: Column,
    full_scan: ColumnScan,
    sample_scan: ColumnScan,
    policy: ClassificationPolicy,
    detectors: Mapping[str, Detector],
) -> ColumnReport:
    detected, found = decide_column(col.name, full_scan, sample_scan, policy, detectors)
    classes = [policy.class_of(detected)] + [policy.class_of(d) for d in found]
    embedded = {n: full_scan.embedded(n) for n in full_scan.hits if full_scan.embedded(n)}
    return ColumnReport(
        col.name,
        col.type,
        detected,
        full_scan.ratio(detected) if detected else 0.0,
        sample_scan.ratio(detected) if detected else 0.0,
        policy.highest(classes),
        found,
        full_scan.whole_ratio(detected) if detected else 0.0,
        embedded,
    )


def with_dispositions(
    reports: list[DatasetReport], disposition_for: Callable[[str, str], str]
) -> list[DatasetReport]:
    """Attach each dataset's disposition from the plan (rule by name, else by class)."""
    return [replace(r, disposition=disposition_for(r.qualified, r.data_class)) for r in reports]


def totals(reports: list[DatasetReport]) -> dict[str, dict[str, int]]:
    """Datasets, rows and bytes per class."""
    out: dict[str, dict[str, int]] = {}
    for r in reports:
        t = out.setdefault(r.data_class, {"datasets": 0, "rows": 0, "bytes": 0})
        t["datasets"] += 1
        t["rows"] += r.rows
        t["bytes"] += r.bytes or 0
    return out


def inventory_json(reports: list[DatasetReport]) -> dict[str, Any]:
    return {"datasets": [r.to_json() for r in reports], "totals": totals(reports)}
