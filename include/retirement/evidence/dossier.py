"""The closure dossier: one folder per run that an auditor can check without trusting us.

``<output_dir>/dossier/<run>/`` holds ``index.html`` (what happened, in order; its labels in
the plan's ``organization.languages``, side by side) and the same as ``dossier.pdf`` with
every certificate on its own page, the evidence files (inventory, great-expectations
results, manifests and certificates with their signatures, receipts, notices summary),
``ledger.jsonl`` (the run's events in the hash chain and the link to the event before
them, docs/audit.md),
``verify.sh`` (docs/audit.md's offline procedure as a POSIX shell script), ``SHA256SUMS``
over every file, and ``SHA256SUMS.sig``: the Ed25519 signature of the sums, which also
binds the chain head written in ``head.json``. Offline:

    openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin \
        -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum -c SHA256SUMS

and ``retirement audit DIR`` (evidence.audit) does both, checks every manifest and
certificate signature, and recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retirement.crypto.signing import write_detached
from retirement.errors import IntegrityError
from retirement.evidence.chain_export import export_run_chain
from retirement.evidence.dossier_pages import write_pages
from retirement.model.versions import DOSSIER_FORMAT

if TYPE_CHECKING:
    from collections.abc import Callable

    from retirement.crypto.keys import KeyStore
    from retirement.ledger.chain import Event
    from retirement.ledger.core import Ledger
    from retirement.model.records import DatasetRecord
    from retirement.plan.model import Plan

    Stamper = Callable[[str, Path, str], dict[str, Any]]  # digest, folder, name -> record


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
    stamper: Stamper | None = None,
) -> Path:
    """Write the dossier of ``run_id``; return its index.html. Sealed again, the run gets a
    new version beside the sealed one (evidence.versions). ``stamper`` time-stamps (RFC
    3161) the chain head and SHA256SUMS (phases.anchor.time_stamp)."""
    from retirement.crypto.keys import fingerprint, load_public_key
    from retirement.evidence.versions import new_version
    from retirement.phases.context import safe_dir

    root, lineage = new_version(output_dir / "dossier", safe_dir(run_id))
    _write_plan(root / "plan.yaml", plan, plan_path, ledger)
    (root / "signing.pub.pem").write_bytes(keys.public_signing_key_pem())
    states = [_listed(s) for s in ledger.iter_dataset_states(run_id)]
    artifacts = {
        kind: ledger.artifacts(run_id, kind=kind)
        for kind in ("gate_result", "gate_docs", "manifest", "certificate", "receipt", "notices")
    }
    languages = tuple(plan.organization.languages)
    evidence = _copy_evidence(root, artifacts, languages)
    _copy_timestamps(root, ledger, run_id)
    receipts = [json.loads(a["detail"]) for a in artifacts["receipt"]]
    (root / "receipts.json").write_text(json.dumps(receipts, ensure_ascii=False, indent=1))
    for path in sorted((output_dir / "inventory" / safe_dir(run_id)).glob("inventory.*")):
        shutil.copyfile(path, root / path.name)
    residual = _write_residual(root, plan, ledger, run_id)
    signer = fingerprint(load_public_key(keys.public_signing_key_pem()))
    head, run_events, sent = _export_chain(root, ledger, run_id, generated, signer, lineage)
    page = dict(
        languages=list(languages),  # absent in dossiers written before: English only
        plan=plan.model_dump(mode="json"),
        run_id=run_id,
        head=head,
        states=states,
        classes=dict(Counter(s["data_class"] for s in states)),
        total=max(1, len(states)),
        gates=[shown(e) for e in run_events if e.kind.startswith("gate_")],
        approvals=[shown(e) for e in run_events if e.kind.startswith("deletion_")],
        anchors=[shown(e) for e in run_events if e.kind == "timestamp_anchored"],
        notices=[json.loads(a["detail"]) for a in artifacts["notices"]],
        sent=sent,
        receipts=receipts,
        evidence=evidence,
        certificates=_certificates(evidence, artifacts["certificate"]),
        retention=_retention(plan, states),
        residual=residual,
    )
    write_pages(root, page)
    _write_verifier(root)
    _seal_and_record(root, keys, head["chain_head"], stamper, lineage, ledger, run_id)
    return root / "index.html"


def _seal_and_record(
    root: Path,
    keys: KeyStore,
    chain_head: str,
    stamper: Stamper | None,
    lineage: dict[str, Any],
    ledger: Ledger,
    run_id: str,
) -> None:
    """Seal the written dossier and put the seal (and its time-stamps) in the ledger."""
    sealed, stamps = _seal(root, keys, chain_head, stamper)
    if lineage["version"] > 1:
        sealed |= lineage
    for kind, payload in [("dossier_sealed", sealed)] + [("timestamp_anchored", p) for p in stamps]:
        ledger.append(kind, actor="dossier", run_id=run_id, payload=payload)


def _seal(
    root: Path, keys: KeyStore, chain_head: str, stamper: Stamper | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """head.json.sig, SHA256SUMS and its signature, and with an authority the head and
    SHA256SUMS time-stamped (the head's token listed, SHA256SUMS's beside it, unlisted):
    the dossier_sealed event's payload and the time-stamps' events' payloads."""
    stamps = []
    if stamper is not None:
        stamps.append(("chain_head", stamper(chain_head, root / "timestamps", "seal")))
    (root / "head.json.sig").write_bytes(keys.signing_key().sign((root / "head.json").read_bytes()))
    sums = _sign(root, keys)
    if stamper is not None:
        stamps.append(("sha256sums", stamper(sums, root, "SHA256SUMS")))
    return {"path": str(root), "sha256sums": sums, "chain_head": chain_head}, [
        {"at": "seal", "subject": subject, "dossier": root.name, **stamp}
        for subject, stamp in stamps
    ]


def _write_residual(root: Path, plan: Plan, ledger: Ledger, run_id: str) -> list[Any]:
    """residual_copies.json: the copies the pipeline cannot reach, with their states."""
    from retirement.evidence.residual import residual_states

    residual = residual_states(plan, ledger, run_id)
    (root / "residual_copies.json").write_text(json.dumps(residual, ensure_ascii=False, indent=1))
    return residual


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


def _copy_evidence(
    root: Path, artifacts: dict[str, list[dict[str, Any]]], languages: tuple[str, ...]
) -> dict[str, list[str]]:
    """The evidence files (and their signatures) into the dossier, each certificate's HTML
    beside it: rendered again from the signed JSON in the plan's ``languages``, so it is
    what the audit renders (evidence.crosscheck), whenever the certificate was written."""
    from retirement.evidence.certificate import render_html

    evidence = {
        key: [
            _copy(Path(a["location"]), root / folder)
            for a in artifacts[kind]
            if Path(a["location"]).exists()
        ]
        for key, kind, folder in _EVIDENCE
    }
    for cert in evidence["certificates"]:
        path = root / cert
        html = render_html(json.loads(path.read_bytes()), path.name, languages)
        path.with_suffix(".html").write_text(html, encoding="utf-8")
    return evidence


def _copy_timestamps(root: Path, ledger: Ledger, run_id: str) -> None:
    """The gates' RFC 3161 requests and tokens (phases.anchor) into timestamps/."""
    for e in ledger.events_of(run_id, ("timestamp_anchored",)):
        where = Path(str(e.payload.get("location") or ""))
        for name in (e.payload.get("token"), e.payload.get("query")) if where.name else ():
            if name and (where / str(name)).is_file():
                (root / "timestamps").mkdir(exist_ok=True)
                shutil.copyfile(where / str(name), root / "timestamps" / str(name))


def _export_chain(
    root: Path,
    ledger: Ledger,
    run_id: str,
    generated: str,
    signer: str,
    lineage: dict[str, Any],
) -> tuple[dict[str, Any], list[Event], int]:
    """ledger.jsonl (this run's part of the chain, streamed: evidence.chain_export) and
    head.json; the run's gate, deletion and time-stamp events, and how many notices it sent."""
    run_events: list[Event] = []
    sent = [0]

    def visit(e: Event) -> None:
        if e.kind.startswith(("gate_", "deletion_")) or e.kind == "timestamp_anchored":
            run_events.append(e)
        sent[0] += e.kind == "notice_sent"

    chain = export_run_chain(ledger, run_id, root / "ledger.jsonl", visit)
    head = {
        "format_version": DOSSIER_FORMAT,
        "run_id": run_id,
        **chain,
        "generated": generated,
        "signing_key": signer,  # as the dossier says: check it against the published one
    }
    if lineage["version"] > 1:  # a later version names the sealed one it supersedes
        head |= {"dossier_version": lineage["version"], "supersedes": lineage["supersedes"]}
    (root / "head.json").write_text(json.dumps(head, indent=1))
    return head, run_events, sent[0]


def shown(e: Event | Any) -> dict[str, Any]:
    """An event as the dossier's page shows it (index.json)."""
    return {"seq": e.seq, "kind": e.kind, "at": e.at, "payload": e.payload}


def _write_verifier(root: Path) -> None:
    """verify.sh: the offline procedure of docs/audit.md as a POSIX shell script (sha256sum,
    openssl, age, zstd), listed and signed with the rest."""
    from importlib.resources import files

    script = files("retirement.evidence").joinpath("templates/verify.sh").read_bytes()
    (root / "verify.sh").write_bytes(script)
    (root / "verify.sh").chmod(0o755)


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


def _certificates(
    evidence: dict[str, list[str]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The dossier's certificates, each with the dataset it certifies."""
    dataset = {Path(a["location"]).name: a.get("dataset") for a in rows}
    return [
        {"file": c, "dataset": dataset.get(Path(c).name) or ""}
        for c in sorted(
            evidence["certificates"], key=lambda c: (dataset.get(Path(c).name) or "", c)
        )
    ]


def _retention(plan: Plan, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each retained archive: its legal basis, when its retention ends (from its signed
    manifest's terms) and the legal hold that keeps it beyond, if any."""
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
                    "retain_until": _retain_until(terms.get("manifest")),
                    "legal_hold": disp.legal_hold,
                }
            )
    return out


def _retain_until(manifest: str | None) -> str:
    """The retention end written in a backup's manifest ("permanent", or "" if unknown)."""
    if not manifest or not Path(manifest).exists():
        return ""
    extra = json.loads(Path(manifest).read_bytes()).get("extra") or {}
    return str((extra.get("retention") or {}).get("retain_until") or "")
