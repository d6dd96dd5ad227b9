"""Proof before deletion, read only from what the hash chain protects.

``gather`` walks a run's chained events (after the whole chain and the run's table rows
verified) and finds, per dataset, its latest backup, the restore-verification of exactly
that backup, and the verified deliveries of exactly that backup to each destination its
disposition requires. The deletion request records that proof in its own chained event;
the approval names the request's hash. At deletion, ``ProofBook`` starts from that request,
verifies every event from it to the head (and every event appended while it works), and
refuses when anything since says the proof no longer holds: a proof gate failed, a newer
backup or receipt of the dataset, a newer request, a rejection, a broken link.
The mutable ``datasets`` table is never read for proof.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from retirement.errors import DeletionRefused

if TYPE_CHECKING:
    from retirement.ledger.chain import Event
    from retirement.ledger.core import Ledger
    from retirement.plan.model import Plan

PROOF_GATES = ("gate_inventory", "gate_backup", "gate_transfer")
# Events of a dataset that, after a request, mean its proof changed.
CHANGES_PROOF = (
    "dataset_inventoried",
    "dataset_backed_up",
    "dataset_backup_verified",
    "dataset_delivered",
    "artifact_backup",
    "artifact_manifest",
    "artifact_receipt",
)


@dataclass(frozen=True)
class Delivered:
    destination: str
    location: str
    name: str
    sha256: str
    version_id: str | None = None
    method: str = ""


@dataclass(frozen=True)
class Proof:
    """Why one dataset may be deleted: all of it from chained events."""

    dataset: str
    disposition: str
    kind: str
    data_class: str | None
    rows: int | None
    bytes: int | None
    manifest: str  # path of the signed manifest
    manifest_sha256: str
    ciphertext_sha256: str
    backup_rows: int
    row_digest: str
    backup_event: int  # seq of the event that recorded the backup
    needed: tuple[str, ...]  # destinations the disposition requires
    deliveries: tuple[Delivered, ...] = ()
    drop_table: bool = False
    rewrite: str | None = None  # the plan's rewrite for a table that remains
    secret_key: bool = False  # a key column holds identifiers: mask its values in messages

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proof:
        return cls(
            **{
                **data,
                "needed": tuple(data["needed"]),
                "deliveries": tuple(Delivered(**d) for d in data["deliveries"]),
            }
        )

    def delivery(self, destination: str) -> Delivered:
        for d in self.deliveries:
            if d.destination == destination:
                return d
        raise DeletionRefused(f"{self.dataset}: no verified delivery to {destination}")


@dataclass
class _Seen:
    """What the chain says of one dataset so far (while walking)."""

    inventory: dict[str, Any] = field(default_factory=dict)
    backup: dict[str, Any] | None = None
    backup_event: int = 0
    manifests: dict[str, str] = field(default_factory=dict)  # location -> sha256
    verified: bool = False
    deliveries: dict[str, Delivered] = field(default_factory=dict)
    state: str = ""


def _identifier_columns(inventory: dict[str, Any]) -> set[str]:
    return {c["name"] for c in inventory.get("columns", []) if c.get("detected") or c.get("found")}


def gather(
    ledger: Ledger, run_id: str, plan: Plan
) -> tuple[list[Proof], dict[str, str], dict[str, str]]:
    """(proofs of the deletable datasets, why each other dataset is not deletable, the
    latest verdict of each gate), from the run's chained events in order."""
    seen: dict[str, _Seen] = {}
    verdicts: dict[str, str] = {}
    for ev in ledger.events(run_id=run_id):
        if ev.kind in ("gate_passed", "gate_failed"):
            verdicts[str(ev.payload.get("gate"))] = ev.kind
            continue
        if ev.dataset is None:
            continue
        s = seen.setdefault(ev.dataset, _Seen())
        _see(s, ev)
    proofs, blocked = [], {}
    for name in sorted(seen):
        s = seen[name]
        why = _why_not(s)
        if why:
            blocked[name] = why
            continue
        proof = _proof(name, s, plan)
        missing = [d for d in proof.needed if d not in {x.destination for x in proof.deliveries}]
        if missing:
            blocked[name] = f"no verified delivery to {', '.join(missing)} (gate_transfer)"
            continue
        proofs.append(proof)
    return proofs, blocked, verdicts


def _see(s: _Seen, ev: Event) -> None:
    p = ev.payload
    if ev.kind.startswith("dataset_"):
        s.state = ev.kind.removeprefix("dataset_")
    if ev.kind == "dataset_inventoried":
        s.inventory = {
            k: p.get(k) for k in ("disposition", "kind", "rows", "bytes", "class", "key")
        }
        s.inventory["secret"] = sorted(_identifier_columns(p))
        s.backup, s.verified, s.deliveries = None, False, {}
    elif ev.kind == "artifact_manifest":
        s.manifests[str(p["location"])] = str(p["sha256"])
    elif ev.kind == "dataset_backed_up":
        backup = dict(p.get("backup") or {})
        if s.backup is None or backup.get("ciphertext_sha256") != s.backup.get("ciphertext_sha256"):
            s.verified, s.deliveries = False, {}
        s.backup, s.backup_event = backup, ev.seq
    elif ev.kind == "dataset_backup_verified" and s.backup is not None:
        verify = p.get("verify") or {}
        s.verified = verify.get("ciphertext_sha256") == s.backup.get("ciphertext_sha256")
    elif ev.kind == "dataset_delivered" and s.backup is not None and s.verified:
        for r in p.get("deliveries", []):
            if r.get("sha256") == s.backup.get("ciphertext_sha256"):
                s.deliveries[r["destination"]] = Delivered(
                    r["destination"],
                    r["location"],
                    r["name"],
                    r["sha256"],
                    r.get("version_id"),
                    str(r.get("method", "")),
                )


def _why_not(s: _Seen) -> str:
    if s.backup is None:
        return "no backup in the chain"
    if not s.verified:
        return "its backup was not restore-verified (gate_backup)"
    if s.manifests.get(str(s.backup.get("manifest"))) is None:
        return "the chain holds no digest of its manifest"
    return ""


def _rewrite(plan: Plan, name: str, rule: Any) -> str | None:
    from retirement.model.ids import DatasetId

    if rule is not None and rule.rewrite is not None:
        return str(rule.rewrite)
    try:
        return plan.source(DatasetId.parse(name).source).rewrite
    except KeyError:
        return None


def _proof(name: str, s: _Seen, plan: Plan) -> Proof:
    disposition = str(s.inventory.get("disposition"))
    needed = (
        tuple(plan.dispositions[disposition].destinations)
        if disposition in plan.dispositions
        else ()
    )
    rule = next((r for r in plan.datasets if r.dataset == name), None)
    key = s.inventory.get("key") or {}
    backup = s.backup or {}
    return Proof(
        dataset=name,
        disposition=disposition,
        kind=str(s.inventory.get("kind") or "table"),
        data_class=s.inventory.get("class"),
        rows=s.inventory.get("rows"),
        bytes=s.inventory.get("bytes"),
        manifest=str(backup["manifest"]),
        manifest_sha256=s.manifests[str(backup["manifest"])],
        ciphertext_sha256=str(backup["ciphertext_sha256"]),
        backup_rows=int(backup["rows"]),
        row_digest=str(backup["row_digest"]),
        backup_event=s.backup_event,
        needed=needed,
        deliveries=tuple(s.deliveries[d] for d in needed if d in s.deliveries),
        drop_table=bool(rule and rule.drop_table),
        rewrite=_rewrite(plan, name, rule),
        secret_key=bool(set(key.get("columns") or ()) & set(s.inventory.get("secret") or ())),
    )


class ProofBook:
    """The approved deletion request of a run and everything the chain said since: the whole
    chain verified when it is made (once per delete task), then every event appended while
    it works, before each dataset."""

    def __init__(self, ledger: Ledger, run_id: str) -> None:
        from retirement.errors import ChainBroken

        self.ledger, self.run_id = ledger, run_id
        try:
            ledger.verify(tables=False)  # the whole chain, once per task, before anything
        except ChainBroken as exc:
            raise DeletionRefused(
                f"{exc}: nothing is deleted on a broken chain; `retirement ledger verify` "
                "names what was changed"
            ) from exc
        requests = ledger.events_of(run_id, ("deletion_requested",))
        if not requests:
            raise DeletionRefused(f"run {run_id} has no deletion request: run deletion_request")
        self.request = request = requests[-1]
        if request.compute_hash() != request.hash:
            raise DeletionRefused(
                f"the deletion request (event {request.seq}) does not match its hash: the ledger "
                "was edited; nothing is deleted on it (retirement ledger verify names the event)"
            )
        self.proofs = {
            d["dataset"]: Proof.from_json(d["proof"])
            for d in request.payload.get("entries", [])
            if "proof" in d
        }
        self.decision: dict[str, Any] | None = None
        self.void_all = ""
        self.void: dict[str, str] = {}
        self.results: dict[str, dict[str, Any]] = {}  # dataset -> its latest deletion record
        # dataset -> when its deletion started and finished, and the task that deleted it
        # (the times of the chained events: what a certificate states)
        self.performed: dict[str, dict[str, str]] = {}
        self.deleted: set[str] = set()
        self._seq, self._hash = request.seq, request.hash
        self.refresh()

    def refresh(self) -> None:
        """Verify and read every event appended since the last look."""
        for ev in self.ledger.events(after=self._seq):
            if (
                ev.seq != self._seq + 1
                or ev.prev_hash != self._hash
                or ev.compute_hash() != ev.hash
            ):
                raise DeletionRefused(
                    f"the ledger's chain is broken at event {ev.seq} (after the deletion request, "
                    f"event {self.request.seq}): nothing is deleted on a broken chain; "
                    "`retirement ledger verify` names what was changed"
                )
            self._seq, self._hash = ev.seq, ev.hash
            if ev.run_id == self.run_id:
                self._see(ev)

    def _see(self, ev: Event) -> None:
        p, at = ev.payload, f"event {ev.seq}"
        if ev.kind in ("deletion_approved", "deletion_rejected"):
            bound = p.get("request", self.request.hash)
            # With approval.required N, the answer that completes N distinct approvals
            # (an answer before it leaves the deletion waiting for the others).
            enough = len(p.get("approvals") or [p]) >= int(p.get("required", 1))
            self.decision = {
                **p,
                "approved": ev.kind == "deletion_approved" and bound == self.request.hash,
                "enough": enough,
                "seq": ev.seq,
                "at": ev.at,
            }
        elif ev.kind == "deletion_requested":
            self.void_all = f"a newer deletion request ({at}) waits for its approval"
        elif ev.kind == "gate_failed" and p.get("gate") in PROOF_GATES:
            self.void_all = (
                f"{p.get('gate')} failed ({at}) after the deletion request (event "
                f"{self.request.seq}): the approval no longer holds. When the gate passes "
                "again, clear deletion_request (with downstream) to ask for a new approval"
            )
        elif ev.dataset is not None and ev.kind in CHANGES_PROOF:
            self.void[ev.dataset] = (
                f"{ev.kind.replace('_', ' ')} ({at}) after the deletion request (event "
                f"{self.request.seq}): its proof changed since it was approved. Clear "
                "deletion_request (with downstream) to ask for a new approval"
            )
        elif ev.dataset is not None and ev.kind == "dataset_deleting":
            deletion = self.results[ev.dataset] = dict(p.get("deletion") or {})
            performed = self.performed.setdefault(ev.dataset, {"started_at": ev.at})
            if "result" in deletion:
                performed.update(finished_at=ev.at, by=ev.actor)
        elif ev.dataset is not None and ev.kind == "dataset_deleted":
            self.deleted.add(ev.dataset)

    def proof(self, dataset: str) -> Proof:
        """The dataset's proof, if it still holds now; DeletionRefused saying why not."""
        self.refresh()
        decided = self.decision
        if decided is None:
            raise DeletionRefused(
                f"{dataset}: deletion was not approved in run {self.run_id} (no decision on the "
                f"deletion request, event {self.request.seq})"
            )
        if not decided["approved"]:
            raise DeletionRefused(
                f"{dataset}: deletion was not approved in run {self.run_id} (it was rejected)"
            )
        if not decided.get("enough", True):
            raise DeletionRefused(
                f"{dataset}: deletion is approved by {len(decided.get('approvals') or [])} of "
                f"the {decided.get('required')} distinct approvers the plan requires"
            )
        if self.void_all:
            raise DeletionRefused(f"{dataset}: {self.void_all}")
        if dataset in self.void:
            raise DeletionRefused(f"{dataset}: {self.void[dataset]}")
        proof = self.proofs.get(dataset)
        if proof is None:
            raise DeletionRefused(
                f"{dataset}: not in the approved deletion request (event {self.request.seq}): the "
                "chain holds no restore-verified backup and verified deliveries for it"
            )
        return proof
