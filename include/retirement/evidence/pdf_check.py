"""dossier.pdf says what the signed data says: the audit renders the PDF again from index.json
and the signed certificates it lists (evidence.dossier.render_pdf, with the WeasyPrint the
audit has) and compares the text of each page with the dossier's PDF (evidence.pdf_text),
whitespace aside. The bytes are not compared: a PDF holds the absolute links of the folder
it was written in, and another WeasyPrint or other fonts lay out the same text in other
bytes. A dossier written before index.json named its languages has no PDF check (its PDF
is bound by SHA256SUMS alone)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def pdf_problems(folder: Path, page: dict[str, Any]) -> list[str]:
    """Why dossier.pdf does not show what the dossier's signed data renders to (empty: it
    does)."""
    from retirement.evidence.pdf_text import PdfTextError, pdf_pages_text

    if page.get("languages") is None:
        return []
    pdf = folder / "dossier.pdf"
    if not pdf.is_file():
        return ["dossier.pdf: missing"]
    try:
        shown = [_letters(p) for p in pdf_pages_text(pdf.read_bytes())]
    except PdfTextError as exc:
        return [f"dossier.pdf: its text cannot be read ({exc})"]
    try:
        rendered = _rendered(folder, page)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"dossier.pdf: the dossier's data does not render to a PDF ({exc})"]
    if shown == rendered:
        return []
    differs = next(
        (i + 1 for i, (a, b) in enumerate(zip(shown, rendered, strict=False)) if a != b),
        min(len(shown), len(rendered)) + 1,
    )
    return [
        f"dossier.pdf: does not show what index.json and the certificates say (its page "
        f"{differs} differs; {len(shown)} pages, the rendering has {len(rendered)})"
    ]


_TEXTS: dict[str, list[str]] = {}  # the text of the PDF each page HTML prints, by its sha256


def _rendered(folder: Path, page: dict[str, Any]) -> list[str]:
    """The text of each page of the PDF the dossier's data renders to. WeasyPrint takes
    seconds; the same HTML prints the same text (wherever its links point), so a process
    that audits copies of one dossier prints it once."""
    from retirement.evidence.dossier_pages import pdf_html, print_pdf
    from retirement.evidence.pdf_text import pdf_pages_text

    html = pdf_html(folder, page)
    digest = hashlib.sha256(html.encode("utf-8")).hexdigest()
    if digest not in _TEXTS:
        if len(_TEXTS) >= 8:
            _TEXTS.clear()
        _TEXTS[digest] = [_letters(p) for p in pdf_pages_text(print_pdf(html, folder))]
    return _TEXTS[digest]


def _letters(text: str) -> str:
    return re.sub(r"\s+", "", text)
