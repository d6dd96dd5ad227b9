"""The dossier's pages: index.json (what they show, as data), index.html and dossier.pdf
rendered from it, in the plan's languages side by side. The audit renders them again from
the signed data and compares (evidence.crosscheck, evidence.pdf_check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, Template, select_autoescape

from retirement.i18n import labeller

_ENV = Environment(
    loader=PackageLoader("retirement.evidence", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
PDF_ROWS = 500  # rows of each long list in dossier.pdf
PDF_CERTIFICATES = 50  # certificates printed in full in dossier.pdf (seconds each to lay out)


def render_index(page: dict[str, Any]) -> str:
    """index.html from index.json (the audit compares the two)."""
    return _index_template(page).render(**_context(page, limit=None))


def _index_template(page: dict[str, Any]) -> Template:
    """The page's template: in its languages, or English only for a dossier written before
    index.json named them."""
    name = "legacy_dossier.html.j2" if page.get("languages") is None else "dossier.html.j2"
    return _ENV.get_template(name)


def _context(
    page: dict[str, Any], *, limit: int | None, certificates: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    context = {**page, "limit": limit, "certificate_pages": certificates or []}
    if page.get("languages") is not None:
        context["t"] = labeller(page["languages"])
    return context


def pdf_html(root: Path, page: dict[str, Any]) -> str:
    """The HTML dossier.pdf is printed from: index.json's page (the first PDF_ROWS of each
    long list), then each of the first PDF_CERTIFICATES certificates it lists, read from
    the dossier's signed JSON, on pages of its own."""
    certificates = [
        {"name": Path(c["file"]).name, "data": json.loads((root / c["file"]).read_bytes())}
        for c in (page.get("certificates") or [])[:PDF_CERTIFICATES]
    ]
    return _index_template(page).render(**_context(page, limit=PDF_ROWS, certificates=certificates))


def render_pdf(root: Path, page: dict[str, Any]) -> bytes:
    """dossier.pdf (WeasyPrint), for auditors who file paper-like records: what the audit
    renders again and compares with the dossier's PDF (evidence.pdf_check)."""
    return print_pdf(pdf_html(root, page), root)


def print_pdf(html: str, root: Path) -> bytes:
    """``html`` as PDF (WeasyPrint), its relative links resolved in ``root``."""
    import logging

    from weasyprint import HTML

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # one line per glyph subset
    pdf: bytes = HTML(string=html, base_url=str(root)).write_pdf()
    return pdf


def write_pages(root: Path, shown_page: dict[str, Any]) -> None:
    """index.json (what the pages show, as data: the audit renders index.html and
    dossier.pdf from it again and cross-checks it with the chain, evidence.crosscheck),
    index.html (streamed: 100,000 rows) and dossier.pdf, both rendered from index.json as
    read back. The PDF lists the first PDF_ROWS of each long list (a PDF of 100,000 table
    rows helps nobody and takes WeasyPrint hours) and each of the first PDF_CERTIFICATES
    certificates; index.html and the evidence files hold them all."""
    text = json.dumps(shown_page, ensure_ascii=False, indent=1)
    (root / "index.json").write_text(text, encoding="utf-8")
    page = json.loads(text)
    with (root / "index.html").open("wb") as f:
        _index_template(page).stream(**_context(page, limit=None)).dump(f, encoding="utf-8")
    (root / "dossier.pdf").write_bytes(render_pdf(root, page))
