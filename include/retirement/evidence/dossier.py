"""The closure dossier: one folder per run that an auditor can check without trusting us.

``<output_dir>/dossier/<run>/`` holds ``index.html`` (what happened, in order) and the same as
``dossier.pdf``, the evidence
files (inventory, great-expectations results, manifests and certificates with their
signatures, receipts, notices summary), ``ledger.jsonl`` (the whole hash chain up to its
head), ``SHA256SUMS`` over every file, and ``SHA256SUMS.sig``: the Ed25519 signature of the
sums, which also binds the chain head written in ``head.json``. Offline:

    openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin \
        -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum -c SHA256SUMS

and ``retirement audit DIR`` does both, checks every manifest and certificate signature,
and recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement.crypto.signing import read_detached, write_detached
from retirement.errors import IntegrityError
from retirement.ledger.chain import GENESIS, Event
from retirement.model.versions import CERTIFICATE_FORMAT, DOSSIER_FORMAT, check_version

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger
    from retirement.model.records import DatasetRecord
    from retirement.plan.model import Plan

_ENV = Environment(
    loader=PackageLoader("retirement.evidence", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
PDF_ROWS = 500  # rows of each long list in dossier.pdf
SIGNED = (".manifest.json", ".json")  # files that come with a detached .sig


def _copy(src: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    shutil.copyfile(src, target)
    sig = src.with_name(src.name + ".sig")
    if sig.exists():
        shutil.copyfile(sig, folder / sig.name)
    return f"{folder.name}/{src.name}"


_EVIDENCE = (  # what is copied into the dossier: (page key, kind of artifact, folder)
    ("gates", "gate_result", "gates"),
    ("gate_docs", "gate_docs", "gates"),
    ("manifests", "manifest", "manifests"),
    ("certificates", "certificate", "certificates"),
)


def build_dossier(
    plan: Plan,
    *,
    plan_path: Path,
    ledger: Ledger,
    run_id: str,
    keys: KeyStore,
    output_dir: Path,
    generated: str,
) -> Path:
    """Write the dossier of ``run_id``; return its index.html."""
    from retirement.phases.context import safe_dir

    root = output_dir / "dossier" / safe_dir(run_id)
    if root.exists():
        shutil.rmtree(root)  # rebuilt whole: a re-run seals the same run again
    root.mkdir(parents=True)
    _write_plan(root / "plan.yaml", plan, plan_path, ledger)
    (root / "signing.pub.pem").write_bytes(keys.public_signing_key_pem())
    states = [_listed(s) for s in ledger.iter_dataset_states(run_id)]
    artifacts = {
        kind: ledger.artifacts(run_id, kind=kind)
        for kind in ("gate_result", "gate_docs", "manifest", "certificate", "receipt", "notices")
    }
    evidence = _copy_evidence(root, artifacts)
    receipts = [json.loads(a["detail"]) for a in artifacts["receipt"]]
    (root / "receipts.json").write_text(json.dumps(receipts, ensure_ascii=False, indent=1))
    for path in sorted((output_dir / "inventory" / safe_dir(run_id)).glob("inventory.*")):
        shutil.copyfile(path, root / path.name)
    head, run_events, sent = _export_chain(root, ledger, run_id, generated)
    page = dict(
        plan=plan,
        run_id=run_id,
        head=head,
        states=states,
        classes=Counter(s["data_class"] for s in states),
        total=max(1, len(states)),
        gates=[e for e in run_events if e.kind.startswith("gate_")],
        approvals=[e for e in run_events if e.kind.startswith("deletion_")],
        notices=[json.loads(a["detail"]) for a in artifacts["notices"]],
        sent=sent,
        receipts=receipts,
        evidence=evidence,
        retention=_retention(plan, states),
    )
    _write_pages(root, page)
    sums = _sign(root, keys)
    ledger.append(
        "dossier_sealed",
        actor="dossier",
        run_id=run_id,
        payload={"path": str(root), "sha256sums": sums, "chain_head": head["chain_head"]},
    )
    return root / "index.html"


def _write_plan(target: Path, plan: Plan, plan_path: Path, ledger: Ledger) -> None:
    """The plan the run was checked with (kept in the ledger), not the file as it is now."""
    text = ledger.plan_text(plan.sha256)
    if text is not None:
        target.write_bytes(text.encode("utf-8"))
        return
    raw = plan_path.read_bytes()  # a ledger written before plans were kept
    if hashlib.sha256(raw).hexdigest() != plan.sha256:
        raise IntegrityError(
            f"{plan_path} is no longer the plan the run was checked with (sha256 "
            f"{plan.sha256[:12]}…) and the ledger does not keep that plan: start a new run"
        )
    target.write_bytes(raw)


def _copy_evidence(root: Path, artifacts: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The evidence files (and their signatures) into the dossier, each certificate's HTML
    rendering beside it; what was copied, by page key."""
    evidence = {
        key: [
            _copy(Path(a["location"]), root / folder)
            for a in artifacts[kind]
            if Path(a["location"]).exists()
        ]
        for key, kind, folder in _EVIDENCE
    }
    signed = {Path(a["location"]).name: Path(a["location"]) for a in artifacts["certificate"]}
    for cert in evidence["certificates"]:
        source = signed[Path(cert).name].with_suffix(".html")
        if source.exists():
            shutil.copyfile(source, (root / cert).with_suffix(".html"))
    return evidence


def _export_chain(
    root: Path, ledger: Ledger, run_id: str, generated: str
) -> tuple[dict[str, Any], list[Event], int]:
    """ledger.jsonl (the chain, streamed: a ledger of millions of events stays on disk) and
    head.json; the run's gate and deletion events, and how many notices it sent."""
    count, last, run_events, sent = 0, GENESIS, [], 0
    with (root / "ledger.jsonl").open("w", encoding="utf-8") as f:
        for e in ledger.events():
            f.write(json.dumps(e.__dict__, ensure_ascii=False, sort_keys=True) + "\n")
            count, last = count + 1, e.hash
            if e.run_id == run_id and e.kind.startswith(("gate_", "deletion_")):
                run_events.append(e)
            sent += e.run_id == run_id and e.kind == "notice_sent"
    head = {
        "format_version": DOSSIER_FORMAT,
        "run_id": run_id,
        "events": count,
        "chain_head": last,
        "generated": generated,
    }
    (root / "head.json").write_text(json.dumps(head, indent=1))
    return head, run_events, sent


def _write_pages(root: Path, page: dict[str, Any]) -> None:
    """index.html (streamed: 100,000 rows) and dossier.pdf. The PDF lists the first PDF_ROWS
    of each long list (a PDF of 100,000 table rows helps nobody and takes WeasyPrint hours);
    index.html and the evidence files hold them all."""
    template = _ENV.get_template("dossier.html.j2")
    with (root / "index.html").open("wb") as f:
        template.stream(**page, limit=None).dump(f, encoding="utf-8")
    _write_pdf(template.render(**page, limit=PDF_ROWS), root, root / "dossier.pdf")


def _sign(root: Path, keys: KeyStore) -> str:
    """SHA256SUMS of every file and its Ed25519 signature; the sha256 of SHA256SUMS."""
    from retirement.formats.digests import file_sha256

    sums = "".join(
        f"{file_sha256(p)[1]}  {p.relative_to(root).as_posix()}\n"
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("SHA256SUMS", "SHA256SUMS.sig")
    )
    write_detached(root / "SHA256SUMS", sums.encode(), keys.signing_key())
    return hashlib.sha256(sums.encode()).hexdigest()


def _listed(state: DatasetRecord) -> dict[str, Any]:
    """What the dossier lists of a dataset (not its column profile: 100,000 of those add
    up to gigabytes)."""
    backup = state.backup
    return {
        "dataset": state.dataset,
        "data_class": state.data_class,
        "rows": state.rows,
        "disposition": state.disposition,
        "state": state.state.value,
        "detail": {
            "backup": {}
            if backup is None
            else {"ciphertext_sha256": backup.ciphertext_sha256, "manifest": backup.manifest}
        },
    }


def _write_pdf(html: str, base: Path, pdf: Path) -> None:
    """The page as PDF (WeasyPrint), for auditors who file paper-like records."""
    import logging

    from weasyprint import HTML

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # one line per glyph subset
    HTML(string=html, base_url=str(base)).write_pdf(pdf)


def _retention(plan: Plan, states: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for s in states:
        disp = plan.dispositions.get(s["disposition"])
        terms = s["detail"].get("backup") or {}
        if disp is not None and disp.action == "retain" and disp.retention is not None:
            out.append(
                {
                    "dataset": s["dataset"],
                    "legal_basis": disp.retention.legal_basis,
                    "backup": terms.get("manifest", ""),
                }
            )
    return out


def audit(folder: Path, public_key: Ed25519PublicKey | None = None) -> list[str]:
    """Every problem found in a dossier (empty: it verifies). ``public_key``: the trust
    anchor published elsewhere; without it the dossier's own signing.pub.pem is used."""
    from retirement.crypto.keys import load_public_key

    problems: list[str] = []
    key = public_key or load_public_key((folder / "signing.pub.pem").read_bytes())
    try:
        sums = read_detached(folder / "SHA256SUMS", key, what="list of digests").decode()
    except IntegrityError as exc:
        return [str(exc)]
    listed = set()
    for line in sums.splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        path = folder / name
        if not path.exists():
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: sha256 differs from SHA256SUMS (altered)")
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name not in listed and name not in ("SHA256SUMS", "SHA256SUMS.sig"):
            problems.append(f"{name}: not listed in SHA256SUMS (added later)")
        if (
            path.is_file()
            and path.name.endswith(SIGNED)
            and path.parent.name in ("manifests", "certificates")
        ):
            try:
                _read_signed(path, key)
            except IntegrityError as exc:
                problems.append(str(exc))
    problems += _audit_chain(folder)
    return problems


def _read_signed(path: Path, key: Ed25519PublicKey) -> None:
    """A manifest or certificate of the dossier: its signature, and a format this reads."""
    from retirement.model.manifest import Manifest

    raw = read_detached(path, key, what=path.parent.name[:-1])
    if path.parent.name == "manifests":
        Manifest.from_bytes(raw, where=str(path))
        return
    try:
        found = json.loads(raw).get("format_version")
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(f"{path}: not a certificate: {exc}") from exc
    check_version(found, CERTIFICATE_FORMAT, what=str(path))


def _audit_chain(folder: Path) -> list[str]:
    head = json.loads((folder / "head.json").read_text())
    try:
        check_version(head.get("format_version"), DOSSIER_FORMAT, what="head.json")
    except IntegrityError as exc:
        return [str(exc)]
    prev, count = GENESIS, 0
    with (folder / "ledger.jsonl").open(encoding="utf-8") as f:
        for count, line in enumerate(f, start=1):  # noqa: B007 (count read after the loop)
            data = json.loads(line)
            event = Event(**data)
            if event.prev_hash != prev:
                return [f"ledger.jsonl: event {event.seq} does not link to the one before it"]
            if event.compute_hash() != event.hash:
                return [f"ledger.jsonl: event {event.seq} ({event.kind}) was altered"]
            prev = event.hash
    if (count, prev) != (head["events"], head["chain_head"]):
        return [
            f"ledger.jsonl: the chain ends at event {count} with {prev[:16]}…, head.json "
            f"says {head['events']} events ending {head['chain_head'][:16]}…"
        ]
    return []
