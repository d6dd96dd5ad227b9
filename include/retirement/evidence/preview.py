"""The preview report: what a run of a plan will do to every dataset, before it does it.

Built from the plan and the inventory alone (plus a read-only count of the customers who
would get a notice): for each dataset its class and disposition, whether it is backed up,
where copies are delivered, what is deleted at the source and how, until when the archive
is kept, and how many notices go out; and the totals. Written as ``preview.json`` and
``preview.html``; neither holds a customer value (names, counts and classes only).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement.evidence.notices import _column, notified_dispositions
from retirement.model.ids import DatasetId
from retirement.plan.retention import retain_until
from retirement.vault.write import safe_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date
    from pathlib import Path

    from retirement.inventory.scan import DatasetReport
    from retirement.plan.model import Plan
    from retirement.sources.base import Source

FORMAT_VERSION = 1
_ENV = Environment(
    loader=PackageLoader("retirement.evidence", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
_SQL = ("postgres", "mysql", "sqlite")
_RECLAIM = {"postgres": "VACUUM", "mysql": "OPTIMIZE TABLE", "sqlite": "VACUUM"}


def preview_document(
    plan: Plan,
    reports: list[DatasetReport],
    *,
    today: date,
    notices: dict[str, int],
    problems: list[str],
    run_id: str,
    generated: str,
) -> dict[str, Any]:
    """The whole preview: one entry per dataset (sorted by name) and the totals."""
    entries = dataset_entries(plan, reports, today=today, notices=notices)
    return {
        "format_version": FORMAT_VERSION,
        "kind": "preview",
        "plan": plan.name,
        "plan_sha256": plan.sha256,
        "run_id": run_id,
        "generated": generated,
        "retired_on": today.isoformat(),
        "datasets": entries,
        "totals": totals(entries),
        "problems": problems,
    }


def dataset_entries(
    plan: Plan, reports: list[DatasetReport], *, today: date, notices: dict[str, int]
) -> list[dict[str, Any]]:
    """What will happen to each dataset, sorted by name (``notices``: per dataset)."""
    entries = [dataset_entry(plan, r, today, notices.get(r.qualified, 0)) for r in reports]
    return sorted(entries, key=lambda e: str(e["dataset"]))


def dataset_entry(plan: Plan, r: DatasetReport, today: date, notices: int) -> dict[str, Any]:
    """What will happen to one dataset."""
    disposition = plan.dispositions.get(str(r.disposition))
    action = disposition.action if disposition else None
    destinations = disposition.destinations if disposition else ()
    return {
        "dataset": r.qualified,
        "kind": r.kind,
        "class": r.data_class,
        "disposition": r.disposition,
        "action": action,
        "rows": r.rows,
        "bytes": r.bytes,
        "backup": disposition is not None,  # every dataset of a disposition is backed up
        "deliveries": [delivery(plan, name, r.qualified) for name in destinations],
        "deletion": deletion_scope(plan, r),
        "retention_end": retention_end(disposition, today),
        "notices": notices,
    }


def delivery(plan: Plan, name: str, dataset: str) -> dict[str, str]:
    """Where a dataset's backup (age file, manifest, signature) is delivered."""
    spec = plan.destinations[name]
    folder = f"{plan.name}/{safe_name(dataset)}/"
    if spec.kind == "s3":
        base = f"s3://{spec.bucket}/" + (f"{spec.prefix.strip('/')}/" if spec.prefix else "")
    elif spec.kind == "sftp":
        base = f"sftp://{spec.connection}/" + (f"{spec.path.strip('/')}/" if spec.path else "")
    else:
        base = f"{(spec.path or name).rstrip('/')}/"
    return {"destination": name, "kind": spec.kind, "path": base + folder}


def deletion_scope(plan: Plan, r: DatasetReport) -> dict[str, Any]:
    """What is deleted at the source and by which method (the delete task's own)."""
    kind = plan.source(r.source).kind
    rule = next((x for x in plan.datasets if x.dataset == r.qualified), None)
    if kind in _SQL:
        columns = list((r.key or {}).get("columns") or [])
        method = (
            f"DELETE by key ({', '.join(columns)}) in batches, each row compared with its backup"
            if columns
            else "DELETE of the whole table in one transaction, every row compared with the backup"
        )
        method += f"; then {_RECLAIM[kind]}"
        if rule and rule.drop_table:
            method += "; then DROP TABLE"
        return {"scope": "rows", "rows": r.rows, "bytes": r.bytes, "method": method}
    if kind == "s3":
        method = "DeleteObject of exactly the backed-up version (size and ETag checked first)"
        return {"scope": "object", "rows": r.rows, "bytes": r.bytes, "method": method}
    method = "unlink of the file, after its sha256 equals the backup's"
    return {"scope": "file", "rows": r.rows, "bytes": r.bytes, "method": method}


def retention_end(disposition: Any, today: date) -> str | None:
    """Until when the encrypted archive is kept: a date, ``permanent``, or None (not kept
    by retention: a transfer's successor keeps its own copy)."""
    if disposition is None:
        return None
    if disposition.action == "retain":
        until = retain_until(disposition.retention, today)
        return until.isoformat() if until else "permanent"
    if disposition.action == "destroy":
        return (today + timedelta(days=disposition.keep_backup_days)).isoformat()
    return None


def totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """All datasets together, and per disposition (with its action, the destinations its
    copies are delivered to and until when its archive is kept)."""

    def add(into: dict[str, Any], e: dict[str, Any]) -> None:
        into["datasets"] += 1
        into["rows"] += e["rows"] or 0
        into["bytes"] += e["bytes"] or 0
        into["backups"] += int(e["backup"])
        into["deliveries"] += len(e["deliveries"])
        into["deleted_rows"] += e["deletion"]["rows"] or 0
        into["deleted_bytes"] += e["deletion"]["bytes"] or 0
        into["notices"] += e["notices"]

    keys = ("datasets", "rows", "bytes", "backups", "deliveries", "deleted_rows")
    zero = dict.fromkeys((*keys, "deleted_bytes", "notices"), 0)
    out: dict[str, Any] = {**zero, "by_disposition": {}}
    for e in entries:
        add(out, e)
        one = out["by_disposition"].setdefault(
            str(e["disposition"]),
            {**zero, "action": e["action"], "destinations": [], "retention_end": None},
        )
        add(one, e)
        names = {d["destination"] for d in e["deliveries"]} | set(one["destinations"])
        one["destinations"] = sorted(names)
        one["retention_end"] = one["retention_end"] or e["retention_end"]
    return out


def run_totals(
    plan: Plan, reports: list[DatasetReport], *, today: date, notices: dict[str, int]
) -> dict[str, Any]:
    """The preview's totals of an inventory (what the approval text shows of a real run)."""
    return totals(dataset_entries(plan, reports, today=today, notices=notices))


def totals_markdown(t: dict[str, Any], shown: Callable[[str], str]) -> str:
    """The totals as a Markdown table, every name passed through ``shown`` (escaped)."""
    lines = [
        "| disposition | action | datasets | rows | delivered to | deliveries | "
        "rows deleted at the source | notices | archive kept until |",
        "|---|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for name, d in t["by_disposition"].items():
        lines.append(
            f"| {shown(name)} | {shown(str(d['action'] or '-'))} | {d['datasets']:,} | "
            f"{d['rows']:,} | {', '.join(shown(x) for x in d['destinations']) or '-'} | "
            f"{d['deliveries']:,} | {d['deleted_rows']:,} | {d['notices']:,} | "
            f"{d['retention_end'] or '-'} |"
        )
    lines.append(
        f"| **all** | | {t['datasets']:,} | {t['rows']:,} | | {t['deliveries']:,} | "
        f"{t['deleted_rows']:,} | {t['notices']:,} | |"
    )
    return "\n".join(lines)


def count_notices(
    plan: Plan, reports: list[DatasetReport], source_for: Callable[[str], Source]
) -> dict[str, int]:
    """How many customer notices each dataset adds (distinct e-mail addresses per notified
    disposition, counted as notify_customers will send them). Reads the sources only."""
    counts: dict[str, int] = {}
    for name in notified_dispositions(plan):
        seen: set[bytes] = set()
        members = sorted((r for r in reports if r.disposition == name), key=lambda r: r.qualified)
        for r in members:
            column = _column(r.to_json(), ("email",))
            if r.kind != "table" or column is None:
                continue
            before = len(seen)
            dataset = DatasetId.parse(r.qualified)
            with source_for(dataset.source) as source:
                at = [c.name for c in source.schema(dataset)].index(column)
                for batch in source.batches(dataset):
                    for row in batch:
                        email = row[at]
                        if email and "@" in str(email):
                            seen.add(_address_key(str(email)))
            counts[r.qualified] = len(seen) - before
    return counts


def _address_key(email: str) -> bytes:
    return hashlib.blake2b(email.lower().encode(), digest_size=8).digest()


def write_preview(document: dict[str, Any], folder: Path) -> dict[str, tuple[Path, str]]:
    """Write ``preview.json`` and ``preview.html`` into ``folder``: each path and sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "json": json.dumps(document, ensure_ascii=False, indent=2) + "\n",
        "html": _ENV.get_template("preview.html.j2").render(doc=document),
    }
    out = {}
    for kind, text in texts.items():
        path = folder / f"preview.{kind}"
        data = text.encode("utf-8")
        path.write_bytes(data)
        out[kind] = (path, hashlib.sha256(data).hexdigest())
    return out
