"""What a scan and its worker process (:mod:`retirement.inventory.worker`) tell each other:
the detectors by definition, and each column's scan as JSON, checked on the way back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from retirement.inventory.detect import BUILTIN, VALIDATORS, ColumnScan, Detector, custom_detector

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


# ---------------------------------------------------------------------- detectors


def describe(detectors: Mapping[str, Detector]) -> list[dict[str, Any]] | None:
    """The detectors as JSON the worker rebuilds exactly (:func:`rebuild`), or None when one
    of them is neither built-in nor a plan's (``custom_detector``): then no worker."""
    out: list[dict[str, Any]] = []
    for key, det in detectors.items():
        if BUILTIN.get(key) is det:
            out.append({"key": key, "builtin": True})
            continue
        check = det._check  # noqa: SLF001 (the definition of a plan's detector)
        validator = next((k for k, fn in VALIDATORS.items() if fn is check), None)
        if check is not None and validator is None:
            return None
        pattern = det._pattern.pattern  # noqa: SLF001
        try:
            same = custom_detector(det.name, pattern, validator) == det
        except ValueError:
            same = False
        if not same:
            return None
        out.append({"key": key, "name": det.name, "pattern": pattern, "validator": validator})
    return out


def rebuild(described: Sequence[Mapping[str, Any]]) -> dict[str, Detector]:
    """The detectors :func:`describe` described, in the same order."""
    out: dict[str, Detector] = {}
    for d in described:
        key = d["key"]
        if d.get("builtin"):
            out[key] = BUILTIN[key]
        else:
            out[key] = custom_detector(d["name"], d["pattern"], d["validator"])
    return out


# ---------------------------------------------------------------------- results


def scan_json(scan: ColumnScan) -> dict[str, Any]:
    return {"non_empty": scan.non_empty, "hits": scan.hits, "whole": scan.whole}


def scan_from_json(data: object, names: Sequence[str], rows: int) -> ColumnScan:
    """A ColumnScan the worker sent, checked: counts that are whole numbers no larger than
    the rows it read, of known detectors (ValueError otherwise)."""
    if not isinstance(data, dict) or set(data) != {"non_empty", "hits", "whole"}:
        raise ValueError(f"not a column scan: {str(data)[:200]}")
    non_empty = data["non_empty"]
    if not _count(non_empty) or non_empty > rows:
        raise ValueError(f"non_empty {non_empty!r} for {rows} rows")
    counts: list[dict[str, int]] = []
    for field in ("hits", "whole"):
        value = data[field]
        if not isinstance(value, dict) or not all(
            k in names and _count(v) and 0 < v <= non_empty for k, v in value.items()
        ):
            raise ValueError(f"{field}: {str(value)[:200]}")
        counts.append({k: value[k] for k in names if k in value})
    hits, whole = counts
    if any(v > hits.get(k, 0) for k, v in whole.items()):
        raise ValueError(f"more whole hits than hits: {whole} of {hits}")
    return ColumnScan(non_empty, hits, whole)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_answer(
    line: bytes, names: Sequence[str], batches: int, rows: int, ncols: int
) -> tuple[list[ColumnScan], list[ColumnScan]]:
    """(full scans, sample scans) of the worker's last line, which must account for every
    batch, row and column sent (ValueError otherwise)."""
    answer = json.loads(line) if line.strip() else None
    if not isinstance(answer, dict):
        raise ValueError(f"not a JSON object: {line[:200]!r}")  # noqa: TRY004 (garbage)
    if (answer.get("batches"), answer.get("rows")) != (batches, rows):
        raise ValueError(
            f"read {answer.get('batches')} batches and {answer.get('rows')} rows; "
            f"{batches} and {rows} were sent"
        )
    fulls, samples = answer.get("full"), answer.get("sample")
    if not isinstance(fulls, list) or not isinstance(samples, list):
        raise ValueError("no lists of full and sample scans")  # noqa: TRY004 (garbage)
    if len(fulls) != ncols or len(samples) != ncols:
        raise ValueError(f"{len(fulls)} full and {len(samples)} sample scans for {ncols} columns")
    return (
        [scan_from_json(s, names, rows) for s in fulls],
        [scan_from_json(s, names, rows) for s in samples],
    )


def merged(a: ColumnScan, b: ColumnScan, names: Sequence[str]) -> ColumnScan:
    """One column's scan of two parts of its rows (counts add), detectors in ``names`` order
    as :class:`~retirement.inventory.engine.EngineScanner` gives them."""

    def add(x: Mapping[str, int], y: Mapping[str, int]) -> dict[str, int]:
        return {k: x.get(k, 0) + y.get(k, 0) for k in names if x.get(k, 0) + y.get(k, 0)}

    return ColumnScan(a.non_empty + b.non_empty, add(a.hits, b.hits), add(a.whole, b.whole))
