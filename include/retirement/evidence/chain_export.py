"""The dossier's part of the chain: ``ledger.jsonl`` and ``head.json`` (docs/audit.md).

``ledger.jsonl`` holds the segment of the chain from the run's first event to the ledger's
head when the dossier was made, one event a line: each event of this run as the exact line
its hash covers (ledger.encoding), each event of another run (or of no run) only as
``{"line_sha256":"<hex>","omitted":true,"seq":N}``: its content is not this dossier's to
show, the digest of its line keeps the chain linked and checkable (an event of encoding 2
is shown as ``{"hash":"<hex>","omitted":true,"seq":N}``, its hash taken as given).
``head.json`` names the link to the event before the segment
(``prev_hash``), where the segment starts and ends, and where encoding 3 starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retirement.ledger.chain import GENESIS
from retirement.ledger.encoding import (
    JCS,
    canonical,
    encoding_of,
    line_digest,
    line_hash,
    link,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from retirement.ledger.chain import Event
    from retirement.ledger.core import Ledger

LINE_KEYS = ("actor", "at", "dataset", "kind", "payload", "run_id", "seq")
LEGACY_KEYS = ("actor", "at", "dataset", "kind", "payload", "prev", "run_id", "seq")


def omitted_line(seq: int, digest: str, encoding: int) -> str:
    """The line of an event not shown: its line's digest (encoding 3) or its hash."""
    name = "line_sha256" if encoding == JCS else "hash"
    return canonical({name: digest, "omitted": True, "seq": seq})


def _omitted(e: Event) -> str:
    digest = line_digest(e.line()) if e.encoding == JCS else e.hash
    return omitted_line(e.seq, digest, e.encoding)


def export_run_chain(
    ledger: Ledger, run_id: str, path: Path, visit: Callable[[Event], None]
) -> dict[str, Any]:
    """Write ``ledger.jsonl`` (streamed) and return head.json's chain fields; ``visit`` sees
    each event of the run."""
    first = ledger.first_seq(run_id)
    prev = GENESIS
    count = run_events = 0
    last, head = (first - 1 if first else 0), GENESIS
    v3_from = ledger.encoding_3_from()
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for e in ledger.events(after=first - 1) if first else ():
            if count == 0:
                prev = e.prev_hash
            if e.run_id == run_id:
                f.write(e.line() + "\n")
                run_events += 1
                visit(e)
            else:
                f.write(_omitted(e) + "\n")
            count, last, head = count + 1, e.seq, e.hash
    return {
        "from_seq": first or 1,
        "prev_hash": prev,
        "events": last,
        "chain_head": head if count else prev,
        "run_events": run_events,
        "omitted": count - run_events,
        "encoding_3_from": v3_from,
    }


@dataclass(frozen=True)
class RunEvent:
    """An event of the run as ledger.jsonl shows it, with the hash recomputed from it."""

    seq: int
    at: str
    actor: str
    kind: str
    dataset: str | None
    payload: dict[str, Any]
    hash: str


def audit_run_chain(
    folder: Path, head: dict[str, Any], hashes: dict[int, str] | None = None
) -> tuple[list[str], list[RunEvent]]:
    """Recompute ledger.jsonl's chain from head.json's link to its head; the problems and
    the run's events (what the cross-checks compare the evidence with). ``hashes`` gets
    the chain's hash after each event, by sequence number (what time-stamps stamp)."""
    try:
        seq, prev = int(head["from_seq"]), str(head["prev_hash"])
        v3_from = head["encoding_3_from"]
        run_id = head["run_id"]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"head.json: no valid chain fields ({exc})"], []
    if seq == 1 and prev != GENESIS:
        return ["head.json: a chain that starts at event 1 links to the genesis hash"], []
    found: list[RunEvent] = []
    with (folder / "ledger.jsonl").open(encoding="utf-8", newline="\n") as f:
        for raw in f:
            line = raw.removesuffix("\n")
            data = _object(line)
            if data is None:
                return [f"ledger.jsonl: line for event {seq} is not a JSON object"], found
            problem, digest = _link(line, data, seq, prev, encoding_of(seq, v3_from))
            if problem:
                return [f"ledger.jsonl: event {seq} {problem}"], found
            if "omitted" not in data:
                if data["run_id"] != run_id:
                    other = data["run_id"]
                    return [f"ledger.jsonl: event {seq} is of another run ({other})"], found
                found.append(_run_event(data, digest))
            if hashes is not None:
                hashes[seq] = digest
            seq, prev = seq + 1, digest
    if (seq - 1, prev) != (head.get("events"), head.get("chain_head")):
        return [
            f"ledger.jsonl: the chain recomputed from it ends at event {seq - 1} with "
            f"{prev[:16]}…, head.json says {head.get('events')} events ending "
            f"{str(head.get('chain_head'))[:16]}… (an event was edited, added, dropped or "
            "reordered)"
        ], found
    return [], found


def _object(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _link(line: str, data: dict[str, Any], seq: int, prev: str, encoding: int) -> tuple[str, str]:
    """What is wrong with one line (empty: nothing), and the hash it gives."""
    if "omitted" in data:
        given = str(data.get("line_sha256" if encoding == JCS else "hash"))
        if line != omitted_line(seq, given, encoding) or len(given) != 64:
            return "is not a valid omitted event", ""
        return "", link(prev, given) if encoding == JCS else given
    keys = LINE_KEYS if encoding == JCS else LEGACY_KEYS
    if tuple(sorted(data)) != keys or data["seq"] != seq:
        return "does not have the fields or sequence number of its place", ""
    if encoding == JCS and line != canonical(data):
        return "is not in canonical form (RFC 8785)", ""
    if encoding != JCS and data["prev"] != prev:
        return "does not link to the one before it", ""
    return "", line_hash(line, prev, encoding)


def _run_event(data: dict[str, Any], digest: str) -> RunEvent:
    return RunEvent(
        seq=data["seq"],
        at=data["at"],
        actor=data["actor"],
        kind=data["kind"],
        dataset=data["dataset"],
        payload=data["payload"] if isinstance(data["payload"], dict) else {},
        hash=digest,
    )


def audit_whole_chain(folder: Path, head: dict[str, Any]) -> list[str]:
    """A dossier of head format 1: ledger.jsonl held every event of the ledger, each as its
    fields with ``prev_hash`` and ``hash``, in encoding 2."""
    prev, count = GENESIS, 0
    with (folder / "ledger.jsonl").open(encoding="utf-8") as f:
        for count, line in enumerate(f, start=1):  # noqa: B007 (count read after the loop)
            data = json.loads(line)
            body = {k: data[k] for k in ("actor", "at", "dataset", "kind", "payload", "run_id")}
            body.update(seq=data["seq"], prev=data["prev_hash"])
            text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if data["prev_hash"] != prev:
                return [f"ledger.jsonl: event {data['seq']} does not link to the one before it"]
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != data["hash"]:
                return [f"ledger.jsonl: event {data['seq']} ({data['kind']}) was altered"]
            prev = data["hash"]
    if (count, prev) != (head["events"], head["chain_head"]):
        return [
            f"ledger.jsonl: the chain ends at event {count} with {prev[:16]}…, head.json "
            f"says {head['events']} events ending {head['chain_head'][:16]}…"
        ]
    return []
