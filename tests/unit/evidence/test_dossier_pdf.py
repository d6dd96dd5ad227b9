"""dossier.pdf, the record an auditor prints: every certificate in it with its dataset, no
table row cut at a page break, and ``retirement audit`` catches a PDF that says something
other than the signed data (re-rendered from edited data, everything re-signed with the
genuine key)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest
from weasyprint import HTML
from weasyprint.formatting_structure import boxes

from retirement.crypto.keys import load_public_key
from retirement.evidence.audit import audit
from retirement.evidence.dossier_pages import pdf_html, render_pdf
from retirement.evidence.pdf_text import pdf_pages_text
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from pathlib import Path

    from tests.unit.evidence.conftest import Sealed


def _split_rows(html: str) -> tuple[int, list[str]]:
    """How many pages ``html`` prints on, and the text of every body row whose box lies on
    more than one page (a header row repeated on each page is not a cut)."""
    document = HTML(string=html).render()
    pages_of: dict[int, set[int]] = defaultdict(set)
    text_of: dict[int, str] = {}
    for number, page in enumerate(document.pages):
        stack: list[Any] = [page._page_box]
        while stack:
            box = stack.pop()
            if isinstance(box, boxes.TableRowGroupBox) and box.is_header:
                continue
            if isinstance(box, boxes.TableRowBox):
                pages_of[id(box.element)].add(number)
                text_of[id(box.element)] = " ".join(box.element.itertext())[:80]
                continue
            if isinstance(box, boxes.ParentBox):
                stack.extend(box.children)
    return len(document.pages), [text_of[k] for k, on in pages_of.items() if len(on) > 1]


def _page(folder: Path) -> dict[str, Any]:
    page: dict[str, Any] = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    return page


def test_the_row_check_sees_a_row_cut_at_a_page_break() -> None:
    """The check below can fail: rows taller than what is left of a page are cut unless
    the stylesheet keeps them whole, as the dossier's does."""
    rows = "".join(f"<tr><td>{i}</td><td>{'line<br>' * 12}</td></tr>" for i in range(30))
    table = f"<table><thead><tr><th>n</th></tr></thead><tbody>{rows}</tbody></table>"
    pages, cut = _split_rows(table)
    assert pages > 2
    assert cut
    assert _split_rows("<style>tr { break-inside: avoid }</style>" + table)[1] == []


def test_no_table_row_of_the_dossier_pdf_spans_two_pages(sealed: Sealed) -> None:
    pages, cut = _split_rows(pdf_html(sealed.root, _page(sealed.root)))
    assert pages > 1 + len(list((sealed.root / "certificates").glob("*.json")))
    assert cut == []


def _sections(pages: list[str]) -> list[str]:
    """The PDF's text cut where a page begins with a certificate's title: the index, then
    each certificate (which may run over more than one page)."""
    sections = [""]
    for page in pages:
        if page.startswith("删除证明\n / \nCertificate of sanitization"):
            sections.append("")
        sections[-1] += page + "\n"
    return sections


def test_every_certificate_is_in_the_pdf_with_its_dataset(sealed: Sealed) -> None:
    sections = _sections(pdf_pages_text((sealed.root / "dossier.pdf").read_bytes()))
    certificates = sorted((sealed.root / "certificates").glob("*.json"))
    assert len(certificates) == 3
    assert len(sections) == 1 + len(certificates)
    for path in certificates:
        cert = json.loads(path.read_bytes())
        own = [s for s in sections[1:] if cert["certificate_id"] in s]
        assert len(own) == 1, f"{path.name}: not on pages of its own in dossier.pdf"
        shown = own[0]
        assert f"{cert['target']['dataset']} (" in shown
        assert cert["target"]["dataset"] in sections[0]  # listed with its dataset
        assert cert["backup"]["ciphertext_sha256"] in shown.replace("\n", "")
        assert f"{cert['target']['rows']:,}" in shown


def test_an_untouched_copy_of_the_dossier_audits_clean(sealed: Sealed) -> None:
    """Elsewhere (its absolute links differ) the PDF still shows what its data renders to."""
    folder = sealed.copy("untouched")
    assert audit(folder, load_public_key(sealed.published.read_bytes())) == []


def _swap_pdf(folder: Path, edit: Any) -> None:
    """dossier.pdf replaced by the rendering of edited data (in a scratch copy), the data
    itself left as signed, and everything re-signed with the genuine key."""
    scratch = folder.with_name(folder.name + "-scratch")
    scratch.mkdir()
    for sub in ("certificates",):
        (scratch / sub).mkdir()
        for f in (folder / sub).glob("*.json"):
            (scratch / sub / f.name).write_bytes(f.read_bytes())
    page = _page(folder)
    edit(scratch, page)
    (folder / "dossier.pdf").write_bytes(render_pdf(scratch, page))


def test_a_pdf_rendered_from_edited_index_data_is_caught(sealed: Sealed) -> None:
    folder = sealed.copy("pdf-index")

    def fewer_rows(_scratch: Path, page: dict[str, Any]) -> None:
        page["states"][0]["rows"] = page["states"][0]["rows"] + 1

    _swap_pdf(folder, fewer_rows)
    resign(folder, sealed.keys.signing_key())
    problems = audit(folder, load_public_key(sealed.published.read_bytes()))
    assert any(p.startswith("dossier.pdf: does not show what index.json") for p in problems), (
        problems
    )


def test_a_pdf_rendered_from_an_edited_certificate_is_caught(sealed: Sealed) -> None:
    folder = sealed.copy("pdf-certificate")

    def later(scratch: Path, _page: dict[str, Any]) -> None:
        path = next((scratch / "certificates").glob("*.json"))
        cert = json.loads(path.read_bytes())
        cert["performed_at"] = "2031-01-01T00:00:00+00:00"
        path.write_text(json.dumps(cert, ensure_ascii=False))

    _swap_pdf(folder, later)
    resign(folder, sealed.keys.signing_key())
    problems = audit(folder, load_public_key(sealed.published.read_bytes()))
    assert problems == [p for p in problems if p.startswith("dossier.pdf")]
    assert any("does not show what index.json and the certificates say" in p for p in problems)


def test_a_pdf_that_is_not_one_is_caught(sealed: Sealed) -> None:
    folder = sealed.copy("pdf-garbage")
    (folder / "dossier.pdf").write_bytes(b"%PDF-1.7\nnothing here\n")
    resign(folder, sealed.keys.signing_key())
    problems = audit(folder, load_public_key(sealed.published.read_bytes()))
    assert any(p.startswith("dossier.pdf: its text cannot be read") for p in problems), problems


def test_a_pdf_of_many_certificates_prints_the_first_and_says_where_the_rest_are(
    sealed: Sealed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retirement.evidence import dossier_pages as dossier

    monkeypatch.setattr(dossier, "PDF_CERTIFICATES", 1)
    html = pdf_html(sealed.root, _page(sealed.root))
    assert html.count('<section class="certificate">') == 1
    assert "the first 1 certificates in full; the other 2 are in the certificates/ folder" in html
    assert "前 1 份证明的全文；其余 2 份见 certificates/" in html
