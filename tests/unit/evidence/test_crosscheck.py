"""A key holder who tampers with a dossier and re-signs everything with the GENUINE key
passes every signature and digest check: the cross-checks (evidence.crosscheck) catch it,
from the dossier alone."""

from __future__ import annotations

import json
import re
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from retirement.evidence.audit import audit
from retirement.ledger.encoding import canonical, line_digest, link
from tests.unit.evidence.conftest import resign

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.unit.evidence.conftest import Sealed


def _events(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (folder / "ledger.jsonl").read_text().splitlines()]


def rechain(folder: Path, events: list[dict[str, Any]]) -> None:
    """ledger.jsonl and head.json made again from ``events`` (renumbered), as a key holder
    rewriting the run's events would: the chain recomputes to the new head."""
    head = json.loads((folder / "head.json").read_text())
    seq, prev, lines = head["from_seq"], head["prev_hash"], []
    for e in events:
        line = canonical({**e, "seq": seq})
        lines.append(line)
        prev, seq = link(prev, line_digest(line)), seq + 1
    (folder / "ledger.jsonl").write_text("".join(x + "\n" for x in lines))
    head.update(events=seq - 1, chain_head=prev, run_events=len(lines))
    (folder / "head.json").write_text(json.dumps(head, indent=1))


def _cert(folder: Path, dataset: str) -> Path:
    return next(
        p
        for p in (folder / "certificates").glob("*.json")
        if json.loads(p.read_text())["target"]["dataset"] == dataset
    )


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))


def drop_certificate(f: Path) -> None:
    cert = _cert(f, "crm.orders")
    for p in (cert, cert.with_name(cert.name + ".sig"), cert.with_suffix(".html")):
        p.unlink()


def edit_certificate(f: Path) -> None:
    _edit_json(_cert(f, "crm.orders"), lambda c: c["target"].update(rows=64))


def swap_certificates(f: Path) -> None:
    a, b = _cert(f, "crm.orders"), _cert(f, "crm.customers")
    tmp = a.with_name("x")
    for suffix in ("", ".sig"):
        pa, pb = a.with_name(a.name + suffix), b.with_name(b.name + suffix)
        pa.rename(tmp)
        pb.rename(pa)
        tmp.rename(pb)


def extra_certificate(f: Path) -> None:
    cert = _cert(f, "crm.orders")
    shutil.copyfile(cert, cert.with_name("cos-0000000000000000.json"))
    shutil.copyfile(
        cert.with_name(cert.name + ".sig"), f / "certificates/cos-0000000000000000.json.sig"
    )


def edit_certificate_html(f: Path) -> None:
    html = _cert(f, "crm.orders").with_suffix(".html")
    html.write_text(
        re.sub(r"<td>65</td>", "<td>6</td>", html.read_text(), count=1).replace("65", "6", 1)
    )


def drop_manifest(f: Path) -> None:
    manifest = next((f / "manifests").glob("*.manifest.json"))
    manifest.unlink()
    manifest.with_name(manifest.name + ".sig").unlink()


def edit_manifest(f: Path) -> None:
    manifest = next((f / "manifests").glob("*.manifest.json"))
    _edit_json(manifest, lambda m: m["fingerprint"].update(rows=m["fingerprint"]["rows"] + 1))


def drop_issued_event(f: Path) -> None:
    rechain(
        f,
        [
            e
            for e in _events(f)
            if not (e["kind"] == "certificate_issued" and e["dataset"] == "crm.orders")
        ],
    )


def approval_after_deletion(f: Path) -> None:
    events = _events(f)
    approval = next(e for e in events if e["kind"] == "deletion_approved")
    events.remove(approval)
    last = max(i for i, e in enumerate(events) if e["kind"] == "dataset_deleted")
    rechain(f, [*events[: last + 1], approval, *events[last + 1 :]])


def edit_inventoried_rows(f: Path) -> None:
    events = _events(f)
    for e in events:
        if e["kind"] == "dataset_inventoried" and e["dataset"] == "crm.customers":
            e["payload"]["rows"] = 29
    rechain(f, events)


def edit_inventory_json(f: Path) -> None:
    _edit_json(
        f / "inventory.json",
        lambda inv: inv["datasets"][0].update(rows=inv["datasets"][0]["rows"] + 5),
    )


def drop_deleted_event(f: Path) -> None:
    rechain(
        f,
        [
            e
            for e in _events(f)
            if not (e["kind"] == "dataset_deleted" and e["dataset"] == "crm.orders")
        ],
    )


def edit_index_html(f: Path) -> None:
    html = f / "index.html"
    html.write_text(html.read_text().replace("<td>deleted</td>", "<td>retained</td>", 1))


def edit_index_json_and_html(f: Path) -> None:
    from retirement.evidence.dossier_pages import render_index

    page = json.loads((f / "index.json").read_text())
    page["states"] = [s for s in page["states"] if s["dataset"] != "crm.orders"]
    (f / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))
    (f / "index.html").write_text(render_index(page))


def edit_index_approval(f: Path) -> None:
    from retirement.evidence.dossier_pages import render_index

    page = json.loads((f / "index.json").read_text())
    page["approvals"][-1]["payload"]["approved_by"] = "mallory"
    (f / "index.json").write_text(json.dumps(page, ensure_ascii=False, indent=1))
    (f / "index.html").write_text(render_index(page))


@pytest.mark.parametrize(
    ("tamper", "caught"),
    [
        pytest.param(
            drop_certificate,
            "recorded as issued by event .* but not in the dossier",
            id="drop-certificate",
        ),
        pytest.param(
            edit_certificate, "not the certificate event .* recorded", id="edit-certificate"
        ),
        pytest.param(
            swap_certificates, "certifies another dataset|sha256 differs", id="reorder-certificates"
        ),
        pytest.param(
            extra_certificate,
            "no certificate_issued event of this run records it",
            id="add-certificate",
        ),
        pytest.param(
            edit_certificate_html, "does not show what .* says", id="edit-certificate-html"
        ),
        pytest.param(
            drop_manifest, "recorded by event .* but not in the dossier", id="drop-manifest"
        ),
        pytest.param(edit_manifest, "no artifact_manifest|not the manifest", id="edit-manifest"),
        pytest.param(
            drop_issued_event, "no certificate_issued event of this run records it", id="drop-event"
        ),
        pytest.param(approval_after_deletion, "comes before any approval", id="reorder-events"),
        pytest.param(edit_inventoried_rows, "crm.customers: the rows disagree", id="edit-event"),
        pytest.param(edit_inventory_json, "the rows disagree", id="edit-inventory"),
        pytest.param(drop_deleted_event, "do not record as deleted", id="drop-deleted-event"),
        pytest.param(
            edit_index_html, "index.html: does not show what index.json", id="edit-index-html"
        ),
        pytest.param(
            edit_index_json_and_html, "of the datasets is not", id="index-drops-a-dataset"
        ),
        pytest.param(edit_index_approval, "of the approval is not", id="index-edits-the-approver"),
    ],
)
def test_tampering_resigned_with_the_genuine_key_is_caught(
    sealed: Sealed, tamper: Callable[[Path], None], caught: str
) -> None:
    from retirement.crypto.keys import load_public_key

    genuine = load_public_key(sealed.published.read_bytes())
    assert audit(sealed.root, genuine) == []
    copy = sealed.copy(tamper.__name__)
    tamper(copy)
    resign(copy, sealed.keys.signing_key())
    problems = audit(copy, genuine)
    assert problems, "tampering passed the audit"
    assert any(re.search(caught, p) for p in problems), problems
    assert not any("SHA256SUMS" in p or "signature" in p for p in problems), problems
