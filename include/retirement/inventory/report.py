"""The inventory written as JSON and as a readable HTML report."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement.inventory.scan import inventory_json

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.inventory.scan import DatasetReport

_ENV = Environment(
    loader=PackageLoader("retirement.inventory", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


def render_html(data: dict[str, Any], *, plan: str | None, generated: str) -> str:
    by_source: dict[str, list[dict[str, Any]]] = {}
    for d in data["datasets"]:
        by_source.setdefault(d["source"], []).append(d)
    return _ENV.get_template("inventory.html.j2").render(
        plan=plan,
        generated=generated,
        datasets=data["datasets"],
        totals=data["totals"],
        by_source=by_source,
        warnings=data.get("warnings", []),
    )


def write_reports(
    reports: list[DatasetReport],
    *,
    json_path: Path | None,
    html_path: Path | None,
    plan: str | None,
    generated: str,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Write the JSON and/or HTML report; return the JSON document."""
    data = inventory_json(reports)
    if warnings:
        data["warnings"] = list(warnings)
    if plan:
        data = {"plan": plan, "generated": generated, **data}
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    if html_path:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(data, plan=plan, generated=generated), encoding="utf-8")
    return data
