"""The dossier (index.html, the certificates' HTML, dossier.pdf) reads in Chinese and in
English: one catalogue per language, both side by side unless the plan's
``organization.languages`` names one; dossiers written before plans named their languages
keep their English pages and still audit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.keys import load_public_key
from retirement.evidence.audit import audit
from retirement.evidence.certificate import render_html
from retirement.evidence.dossier_pages import render_index
from retirement.evidence.pdf_text import pdf_pages_text
from retirement.i18n import LANGUAGES, catalogue
from retirement.model.state import RunState
from retirement.ui.overview import STAGES
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from tests.unit.evidence.conftest import Sealed

TEMPLATES = Path(__file__).resolve().parents[3] / "include" / "retirement"
LABELS = {  # a label of each kind of page, per language
    "zh": ("结案档案", "删除证明", "数据集", "保存期限表"),
    "en": ("Closure dossier", "Certificate of sanitization", "dataset", "Retention schedule"),
}


def _certificates(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (p.name, json.loads(p.read_bytes())) for p in sorted(folder.glob("certificates/*.json"))
    ]


def test_the_catalogues_hold_every_label_the_pages_use() -> None:
    zh, en = (catalogue(lang) for lang in LANGUAGES)
    assert zh.keys() == en.keys()
    assert all(zh[k] and en[k] for k in zh)
    used = set()
    for template in TEMPLATES.glob("*/templates/*.j2"):
        used |= set(re.findall(r'\bt\("([a-z_.]+)"', template.read_text(encoding="utf-8")))
    used |= {f"stage.{s.replace(' ', '_')}" for s in STAGES}
    used |= {f"status.{s.label.replace(' ', '_')}" for s in RunState}
    assert used - {k for k in used if k.endswith(".")} <= zh.keys()
    for key in zh:  # the same places to fill in each language
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_the_dossier_reads_in_chinese_and_english(sealed: Sealed) -> None:
    index = (sealed.root / "index.html").read_text(encoding="utf-8")
    pdf = "\n".join(pdf_pages_text((sealed.root / "dossier.pdf").read_bytes()))
    certificates = _certificates(sealed.root)
    assert len(certificates) == 3
    for lang, labels in LABELS.items():
        assert f'<span lang="{lang}">{labels[0]}</span>' in index
        assert f'<span lang="{lang}">{labels[3]}</span>' in index
        assert all(label in pdf for label in labels), lang
        for name, _cert in certificates:
            html = (sealed.root / "certificates" / name).with_suffix(".html").read_text()
            assert f'<span lang="{lang}">{labels[1]}</span>' in html
    for name, cert in certificates:  # a dataset's values, once, whatever the languages
        html = (sealed.root / "certificates" / name).with_suffix(".html").read_text()
        for value in (cert["target"]["dataset"], cert["certificate_id"], cert["issued_at"]):
            assert value in html
            assert value in pdf.replace("\n", "")


def test_one_language_shows_only_its_own_labels_and_every_value(sealed: Sealed) -> None:
    page = json.loads((sealed.root / "index.json").read_text(encoding="utf-8"))
    name, cert = _certificates(sealed.root)[0]
    for lang, other in (("zh", "en"), ("en", "zh")):
        index = render_index({**page, "languages": [lang]})
        html = render_html(cert, name, (lang,))
        assert f'<html lang="{lang}">' in index
        assert LABELS[lang][0] in index
        assert LABELS[lang][1] in html
        assert f'lang="{other}"' not in index + html
        assert LABELS[other][1] not in html
        assert LABELS[other][0] not in index
        for s in page["states"]:
            assert f"<td>{s['dataset']}</td><td>{s['data_class']}</td>" in index
        assert f"{cert['target']['dataset']} (" in html
        assert f"{cert['target']['rows']:,}" in html


def test_a_dossier_written_before_languages_still_audits(sealed: Sealed) -> None:
    """index.json without languages: its pages are the English-only ones of then, which the
    audit renders again (its PDF is bound by SHA256SUMS alone, as then)."""
    folder = sealed.copy("before-languages")
    page = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    del page["languages"]
    del page["plan"]["organization"]["languages"]
    (folder / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))
    (folder / "index.html").write_text(render_index(page), encoding="utf-8")
    for name, cert in _certificates(folder):
        html = render_html(cert, name, None)
        assert "删除证明" not in html
        assert "Certificate of sanitization" in html
        (folder / "certificates" / name).with_suffix(".html").write_text(html, encoding="utf-8")
    assert "结案档案" not in (folder / "index.html").read_text()
    resign(folder, sealed.keys.signing_key())
    key = load_public_key(sealed.published.read_bytes())
    assert audit(folder, key) == []

    (folder / "index.html").write_text(render_index({**page, "languages": ["zh", "en"]}))
    resign(folder, sealed.keys.signing_key())
    assert "index.html: does not show what index.json says (not its rendering)" in audit(
        folder, key
    )


def test_languages_other_than_the_plans_are_caught(sealed: Sealed) -> None:
    folder = sealed.copy("other-languages")
    page = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    page["languages"] = ["en"]
    (folder / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))
    (folder / "index.html").write_text(render_index(page), encoding="utf-8")
    resign(folder, sealed.keys.signing_key())
    problems = audit(folder, load_public_key(sealed.published.read_bytes()))
    assert problems == ["index.json: its languages are not the plan's organization.languages"]
