"""The parts of a dossier agree with each other and with the run's chained events, checked
from the dossier alone (docs/audit.md, "Cross-checks"): signatures only say who wrote a
file, these say that the files tell the same story as the hash chain.

- every certificate is one a ``certificate_issued`` event of the run recorded (same file
  name, same sha256), and every certificate recorded is in the dossier;
- every manifest is one an ``artifact_manifest`` event recorded, and every one recorded is
  there;
- every dataset the events record as deleted has exactly one certificate, the one its
  ``dataset_deleted`` event names, and no certificate certifies a dataset not deleted;
- the approval comes before every deletion in the chain, and is the one certificates cite;
- rows agree: inventory.json = ``dataset_inventoried`` = the backup's manifest =
  ``dataset_backed_up`` = the certificate;
- each certificate's HTML is what its signed JSON renders to, in the languages index.json
  names (the plan's ``organization.languages``);
- index.html is what index.json renders to, and index.json says what the chain and the
  other files say: the plan, the head, each dataset's state, rows and backup, the gates,
  the approval, the notices sent, the receipts and the evidence files;
- dossier.pdf shows the text that index.json and the certificates render to
  (evidence.pdf_check).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.evidence.chain_export import RunEvent


def _name(location: object) -> str:
    return PurePosixPath(str(location)).name


def _latest(events: list[RunEvent], kind: str) -> dict[str, RunEvent]:
    """The latest event of ``kind`` per dataset."""
    return {e.dataset: e for e in events if e.kind == kind and e.dataset is not None}


def crosscheck(folder: Path, run_id: str, events: list[RunEvent]) -> list[str]:
    """Every disagreement between the dossier's files and the run's events."""
    certs = _read_json(folder, "certificates", "*.json")
    manifests = _read_json(folder, "manifests", "*.manifest.json")
    problems = _certificates(certs, run_id, events)
    problems += _manifests(manifests, events)
    problems += _deleted(certs, events)
    problems += _approval(certs, events)
    problems += _rows(folder, certs, manifests, events)
    languages, problem = _languages(folder)
    if problem:
        return [*problems, problem]
    problems += _renderings(folder, certs, languages)
    problems += _index(folder, run_id, events)
    return problems


def _languages(folder: Path) -> tuple[list[str] | None, str | None]:
    """The languages index.json names (None: a dossier written before it named them, its
    pages in English), or why they cannot be rendered in."""
    from retirement.i18n import LANGUAGES

    try:
        page = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None  # _index says so
    languages = page.get("languages") if isinstance(page, dict) else None
    if languages is None:
        return None, None
    if not isinstance(languages, list) or not languages or not set(languages) <= set(LANGUAGES):
        return None, f"index.json: languages {languages!r} are not a set this renders"
    organization = (page.get("plan") or {}).get("organization") or {}
    if organization.get("languages") != languages:
        return None, "index.json: its languages are not the plan's organization.languages"
    return languages, None


def _read_json(folder: Path, sub: str, pattern: str) -> dict[str, tuple[bytes, dict[str, Any]]]:
    found = {}
    for path in sorted((folder / sub).glob(pattern)):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        found[path.name] = (raw, data if isinstance(data, dict) else {})
    return found


def _certificates(
    certs: dict[str, tuple[bytes, dict[str, Any]]], run_id: str, events: list[RunEvent]
) -> list[str]:
    issued = {_name(e.payload.get("path")): e for e in events if e.kind == "certificate_issued"}
    problems = []
    for name, (raw, data) in certs.items():
        event = issued.get(name)
        where = f"certificates/{name}"
        if event is None:
            problems.append(f"{where}: no certificate_issued event of this run records it")
            continue
        if hashlib.sha256(raw).hexdigest() != event.payload.get("sha256"):
            problems.append(
                f"{where}: not the certificate event {event.seq} recorded as issued (sha256 "
                "differs)"
            )
        if (data.get("ledger") or {}).get("run_id") != run_id:
            problems.append(f"{where}: names another run than the dossier's ({run_id})")
        if (data.get("target") or {}).get("dataset") != event.dataset:
            problems.append(f"{where}: certifies another dataset than event {event.seq}")
    problems += [
        f"certificates/{name}: recorded as issued by event {e.seq} ({e.dataset}) but not in "
        "the dossier"
        for name, e in issued.items()
        if name not in certs
    ]
    return problems


def _manifests(
    manifests: dict[str, tuple[bytes, dict[str, Any]]], events: list[RunEvent]
) -> list[str]:
    recorded = {
        _name(e.payload.get("location")): e for e in events if e.kind == "artifact_manifest"
    }
    problems = []
    for name, (raw, _data) in manifests.items():
        event = recorded.get(name)
        if event is None:
            problems.append(f"manifests/{name}: no artifact_manifest event of this run records it")
        elif hashlib.sha256(raw).hexdigest() != event.payload.get("sha256"):
            problems.append(f"manifests/{name}: not the manifest event {event.seq} recorded")
    problems += [
        f"manifests/{name}: recorded by event {e.seq} ({e.dataset}) but not in the dossier"
        for name, e in recorded.items()
        if name not in manifests
    ]
    return problems


def _deleted(certs: dict[str, tuple[bytes, dict[str, Any]]], events: list[RunEvent]) -> list[str]:
    deleted = _latest(events, "dataset_deleted")
    by_dataset = Counter((d.get("target") or {}).get("dataset") for _r, d in certs.values())
    problems = []
    for dataset, event in deleted.items():
        named = _name(event.payload.get("certificate"))
        if by_dataset[dataset] != 1:
            problems.append(
                f"{dataset}: deleted (event {event.seq}) with {by_dataset[dataset]} "
                "certificates in the dossier, not exactly one"
            )
        elif named not in certs:
            problems.append(f"{dataset}: its certificate {named} (event {event.seq}) is missing")
    problems += [
        f"a certificate certifies the deletion of {dataset}, which this run's events do not "
        "record as deleted"
        for dataset in by_dataset
        if dataset not in deleted
    ]
    return problems


def _approval(certs: dict[str, tuple[bytes, dict[str, Any]]], events: list[RunEvent]) -> list[str]:
    deletions = [e for e in events if e.kind in ("dataset_deleting", "dataset_deleted")]
    if not deletions:
        return []
    approvals = [e for e in events if e.kind == "deletion_approved"]
    first = min(e.seq for e in deletions)
    before = [e for e in approvals if e.seq < first and e.payload.get("approved") is not False]
    if not before:
        return [
            f"the first deletion (event {first}) comes before any approval in the chain"
            + (f" (approved at event {approvals[0].seq})" if approvals else "")
        ]
    approval = before[-1]
    problems = []
    for name, (_raw, data) in certs.items():
        cited = data.get("approval") or {}
        if cited.get("request") != approval.payload.get("request") or cited.get(
            "approved_by"
        ) != approval.payload.get("approved_by"):
            problems.append(
                f"certificates/{name}: cites an approval other than event {approval.seq}'s"
            )
    return problems


def _rows(
    folder: Path,
    certs: dict[str, tuple[bytes, dict[str, Any]]],
    manifests: dict[str, tuple[bytes, dict[str, Any]]],
    events: list[RunEvent],
) -> list[str]:
    """Each dataset's rows as every part of the dossier states them."""
    stated: dict[str, dict[str, object]] = {}

    def say(dataset: object, where: str, rows: object) -> None:
        if isinstance(dataset, str):
            stated.setdefault(dataset, {})[where] = rows

    for e in _latest(events, "dataset_inventoried").values():
        say(e.dataset, f"event {e.seq} (dataset_inventoried)", e.payload.get("rows"))
    for e in _latest(events, "dataset_backed_up").values():
        backup = e.payload.get("backup") or {}
        say(e.dataset, f"event {e.seq} (dataset_backed_up)", backup.get("rows"))
    try:
        inventory = json.loads((folder / "inventory.json").read_text())
        listed = inventory.get("datasets", []) if isinstance(inventory, dict) else []
    except (OSError, ValueError):
        listed = []
    for d in listed:
        say(d.get("dataset"), "inventory.json", d.get("rows"))
    for name, (_raw, m) in manifests.items():
        say(m.get("dataset"), f"manifests/{name}", (m.get("fingerprint") or {}).get("rows"))
    for name, (_raw, c) in certs.items():
        target = c.get("target") or {}
        say(target.get("dataset"), f"certificates/{name}", target.get("rows"))
    problems = []
    for dataset, says in sorted(stated.items()):
        if len(set(map(repr, says.values()))) > 1:
            told = ", ".join(f"{where}: {rows}" for where, rows in says.items())
            problems.append(f"{dataset}: the rows disagree ({told})")
    return problems


def _renderings(
    folder: Path, certs: dict[str, tuple[bytes, dict[str, Any]]], languages: list[str] | None
) -> list[str]:
    """Each certificate's HTML is what its signed JSON renders to (evidence.certificate)."""
    from retirement.evidence.certificate import render_html

    problems = []
    for name, (_raw, data) in certs.items():
        html = (folder / "certificates" / name).with_suffix(".html")
        if not html.exists():
            continue
        if html.read_text(encoding="utf-8") != render_html(data, name, languages):
            problems.append(
                f"certificates/{html.name}: does not show what {name} says (it is not the "
                "rendering of the signed certificate)"
            )
    return problems


def _index(folder: Path, run_id: str, events: list[RunEvent]) -> list[str]:
    """index.html against index.json, and index.json against the dossier and the chain."""
    from retirement.evidence.dossier import shown
    from retirement.evidence.dossier_pages import render_index

    try:
        page = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        html = (folder / "index.html").read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        return [f"index.json or index.html: not readable: {exc}"]
    from retirement.evidence.pdf_check import pdf_problems

    problems = []
    if html != render_index(page):
        problems.append("index.html: does not show what index.json says (not its rendering)")
    problems += pdf_problems(folder, page)
    said = {
        "the run": (page.get("run_id"), run_id),
        "the head": (page.get("head"), json.loads((folder / "head.json").read_text())),
        "the plan": (page.get("plan"), _plan(folder, page.get("plan"))),
        "the gates": (page.get("gates"), [shown(e) for e in events if e.kind.startswith("gate_")]),
        "the approval": (
            page.get("approvals"),
            [shown(e) for e in events if e.kind.startswith("deletion_")],
        ),
        "the time-stamps": (
            page.get("anchors") if "languages" in page else None,  # not in older dossiers
            [shown(e) for e in events if e.kind == "timestamp_anchored"]
            if "languages" in page
            else None,
        ),
        "the notices sent": (page.get("sent"), sum(e.kind == "notice_sent" for e in events)),
        "the receipts": (page.get("receipts"), json.loads((folder / "receipts.json").read_text())),
        "the datasets": (_states_shown(page), _states_folded(events)),
        "the evidence files": (_evidence_shown(page), _evidence_present(folder)),
    }
    problems += [
        f"index.json: what it shows of {what} is not what the chain and the dossier's files say"
        for what, (shown_, true) in said.items()
        if shown_ != true
    ]
    return problems


def _plan(folder: Path, shown: object) -> object:
    """plan.yaml as index.json shows a plan; without ``organization.languages`` where the
    shown plan has none (a dossier written before plans named their languages)."""
    from retirement.errors import RetirementError
    from retirement.plan.model import load_plan

    try:
        plan = load_plan(folder / "plan.yaml").model_dump(mode="json")
    except (RetirementError, OSError, ValueError) as exc:
        return f"plan.yaml does not load: {exc}"
    organization = (shown.get("organization") if isinstance(shown, dict) else None) or {}
    if "languages" not in organization:
        plan["organization"].pop("languages", None)
    return plan


def _states_shown(page: dict[str, Any]) -> dict[str, tuple[object, ...]]:
    return {
        s.get("dataset"): (
            s.get("state"),
            ((s.get("detail") or {}).get("backup") or {}).get("ciphertext_sha256"),
        )
        for s in page.get("states") or []
    }


def _states_folded(events: list[RunEvent]) -> dict[str, tuple[object, ...]]:
    """Each dataset's state and backup digest as its chained events fold them."""
    from retirement.model.records import fold_events

    by_dataset: dict[str, list[RunEvent]] = {}
    for e in events:
        if e.dataset is not None and e.kind.startswith("dataset_"):
            by_dataset.setdefault(e.dataset, []).append(e)
    states: dict[str, tuple[object, ...]] = {}
    for dataset, own in by_dataset.items():
        folded = fold_events((e.kind, e.payload) for e in own)
        if folded is not None:
            backup = folded[1].get("backup") or {}
            states[dataset] = (folded[0].value, backup.get("ciphertext_sha256"))
    return states


def _evidence_shown(page: dict[str, Any]) -> list[str]:
    return sorted(f for files in (page.get("evidence") or {}).values() for f in files)


def _evidence_present(folder: Path) -> list[str]:
    """The evidence files the page links: gate results and docs, manifests, certificates
    (not their signatures, nor the certificates' own HTML)."""
    linked = {"gates": (".json", ".html"), "manifests": (".json",), "certificates": (".json",)}
    return sorted(
        f"{sub}/{path.name}"
        for sub, suffixes in linked.items()
        for path in (folder / sub).glob("*")
        if path.suffix in suffixes
    )
