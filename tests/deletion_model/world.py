"""One hunt: a source, a plan, the phases with faults between them, and the invariants.

The invariants, checked after every step (a phase attempt or a fault):

I1  a token the pipeline removed from the source is in an intact backup in the vault (its
    ciphertext has the manifest's digest and decrypts), and, where the backup's
    disposition delivers, a copy with the same digest is at every destination;
I2  nothing outside the source root changes (a symbolic link may point there);
I4  every phase that fails raises one of the project's errors with a reason (a fault the
    hunt injects, a killed process or connection, is exempt);
I6  the removal happened after the protocol: the backup holding the token was
    restore-verified (gate_backup ran and passed after it appeared), delivered and verified
    where needed (gate_transfer), then a deletion request, then an approval; no gate failed
    between the request and the removal, no newer backup of the dataset appeared since the
    request, and nobody had broken the ledger's chain;
and once gate_deletion passes:
I3  every certificate names a backup none of whose tokens is left at the source, and the
    count it certifies is the number of that backup's tokens the pipeline removed;
I5  the ledger's chain verifies (unless the hunt edited it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
import yaml
import zstandard

from retirement.errors import RetirementError
from tests.deletion_model import adapter
from tests.deletion_model.backends import (
    File,
    Folder,
    MariaDb,
    Postgres,
    SqlBackend,
    Sqlite,
    Table,
    bytes_tokens,
    csv_tokens,
    value_of,
    write_file,
)

PHASES = (
    "plan_check",
    "inventory",
    "gate_inventory",
    "backup",
    "gate_backup",
    "transfer",
    "gate_transfer",
    "request",
    "approve",
    "delete",
    "gate_deletion",
)
GATES = ("gate_inventory", "gate_backup", "gate_transfer")
DELIVERS = {"hand_over": ("successor",), "archive": ("archive",)}


@dataclass(frozen=True)
class Fault:
    """What happens between two steps. ``kind`` is one of FAULTS; ``target`` picks a table,
    file, backup, copy or event (modulo how many there are); ``arg`` varies it."""

    kind: str
    target: int = 0
    arg: int = 0


FAULTS = (
    "insert",  # the application adds a row (a duplicate in a keyless table; a reused plan key)
    "update",  # the application changes a row (a new token)
    "delete_row",  # the application deletes a row
    "add_sheet",  # a workbook gets a new sheet
    "symlink_swap",  # a directory of the source becomes a link to a folder outside it
    "remove_backup",  # a vault file disappears
    "corrupt_backup",  # bytes of a vault file flip
    "alter_copy",  # a delivered copy changes at the destination
    "fake_delivered",  # someone edits the ledger's datasets table: delivered, fake receipts
    "edit_event",  # someone edits an event's payload in the ledger (the chain breaks)
    "edit_plan",  # the plan file changes during the run
    "mark_success",  # an operator marks a gate task successful without running it
    "rerun",  # an operator clears and re-runs an earlier task
)
RERUNNABLE = ("backup", "gate_backup", "transfer", "gate_transfer", "request", "inventory")


@dataclass(frozen=True)
class Scenario:
    backend: str  # sqlite, postgres, mysql, files
    tables: tuple[Table, ...] = ()
    files: tuple[File, ...] = ()
    faults: tuple[tuple[str, Fault], ...] = ()  # ("before:<phase>" | "retry:<phase>", fault)
    retries: int = 1
    kill_after: int | None = None  # the first delete attempt dies after this many batches
    block_kill: int | None = None  # ... or its connection is killed deleting this table
    fail_before: int | None = None  # ... or it dies before the n-th dataset it deletes
    batch: int = 2  # rows per deletion batch (tiny, so a kill lands between two)


class Killed(Exception):  # it is what happened
    """The hunt killed the task's process here."""


@dataclass
class Step:
    index: int
    what: str  # a phase name, or "fault:<kind>"
    status: str  # ok, failed, marked, done
    error: str = ""


@dataclass
class World:
    scenario: Scenario
    tmp: Path
    db_url: str | None = None
    log: list[Step] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    model: dict[str, Counter[str]] = field(default_factory=dict)
    outside: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    removed_by: dict[str, list[str]] = field(default_factory=dict)  # dataset -> tokens
    appeared: dict[str, int] = field(default_factory=dict)  # vault file -> step index
    chain_broken_at: int | None = None
    tables_edited: bool = False
    stopped: str = ""
    certified: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ setup

    def __post_init__(self) -> None:
        self._tok = 0
        self.out = self.tmp / "out"
        self.out.mkdir(parents=True)
        s = self.scenario
        self.tables = list(s.tables)
        self.files = list(s.files)
        self.db: SqlBackend | None = None
        self.folder: Folder | None = None
        if s.backend == "files":
            self.folder = Folder(self.tmp / "src", self.tmp / "outside")
            self.folder.root.mkdir()
            self.folder.outside.mkdir()
            self._sheets: dict[str, list[str]] = {}
            for f in list(self.files):
                self._make_file(f)
        else:
            self.db = {
                "sqlite": lambda: Sqlite(self.tmp / "src.sqlite"),
                "postgres": lambda: Postgres(self.db_url or ""),
                "mysql": lambda: MariaDb(self.db_url or ""),
            }[s.backend]()
            if s.backend == "sqlite":
                sqlite3.connect(self.tmp / "src.sqlite").close()
            made = []
            for t in self.tables:
                if self.db.create(t):
                    made.append(t)
                    self.model[t.name] = Counter()
                    for values in t.rows:
                        self._insert(t, values)
                    for i in range(t.duplicates):
                        if t.rows and not t.pk:
                            self._insert(t, t.rows[i % len(t.rows)], self._last_tok(t, i))
            self.tables = made
        self.original_plan = self._plan()
        self.plan_path = self.tmp / "plan.yaml"
        self.plan_path.write_text(yaml.safe_dump(self.original_plan, allow_unicode=True))
        root = str(self.folder.root) if self.folder else None
        url = None if self.folder else (self.db.url if self.db else None)
        opener = adapter.source_opener(self.plan_path, url=url, root=root)
        self.p = adapter.new_pipeline(self.plan_path, self.out, opener)
        self._undo = adapter.set_delete_batch(s.batch)

    def close(self) -> None:
        self._undo()
        self.p.ledger.close()

    def token(self) -> str:
        self._tok += 1
        return f"k{self._tok:05d}"

    def _last_tok(self, t: Table, i: int) -> str:
        toks = sorted(self.model[t.name])
        return toks[i % len(toks)] if toks else self.token()

    def _insert(self, t: Table, values: tuple[Any, ...], tok: str | None = None) -> None:
        tok = tok or self.token()
        if self.db is not None and self.db.insert(t, values, tok):
            self.model[t.name][tok] += 1

    def _make_file(self, f: File) -> None:
        assert self.folder is not None
        if f.kind == "xlsx":
            tokens = [[self.token() for _ in range(f.rows)] for _ in f.sheets]
        elif f.kind == "doc":
            tokens = [[self.token()]]
        else:
            tokens = [[self.token() for _ in range(f.rows)]]
        try:
            self.folder.write(f, tokens)
        except OSError:
            self.files.remove(f)
            return
        self.model[f.relative] = Counter(t for sheet in tokens for t in sheet)

    def _plan(self) -> dict[str, Any]:
        s = self.scenario
        kind = {"sqlite": "sqlite", "postgres": "postgres", "mysql": "mysql", "files": "files"}
        source: dict[str, Any] = {"name": "src", "kind": kind[s.backend], "connection": "hunt"}
        items: list[Any] = self.tables if self.db else self.files
        excluded = [
            i.name if isinstance(i, Table) else i.relative
            for i in items
            if i.excluded and _printable(i.name if isinstance(i, Table) else i.relative)
        ]
        if excluded:
            source["exclude"] = excluded
        rules = []
        for item in items:
            if item.rule is None or item.excluded:
                continue
            names = (
                [(item.name, None)]
                if isinstance(item, Table)
                else [(item.relative, sh) for sh in item.sheets] or [(item.relative, None)]
            )
            for name, sheet in names:
                rule: dict[str, Any] = {
                    "dataset": adapter.dataset_name(name, sheet),
                    "disposition": item.rule.disposition,
                }
                if item.rule.key:
                    rule["key"] = list(item.rule.key)
                if item.rule.drop_table:
                    rule["drop_table"] = True
                rules.append(rule)
        recipient = pyrage.x25519.Identity.generate().to_public()
        plan: dict[str, Any] = {
            "name": "hunt",
            "scenario": "deregistration",
            "organization": {
                "name": "Hunt Co.",
                "uscc": "91310000MA1FL0000N",
                "contact": {"name": "DPO"},
            },
            "sources": [source],
            "dispositions": {
                "erase": {"action": "destroy", "keep_backup_days": 30},
                "erase_now": {"action": "destroy", "keep_backup_days": 0},
                "hand_over": {
                    "action": "transfer",
                    "recipient": "successor",
                    "destinations": ["successor"],
                    "impact_assessment": {"file": "pia.pdf", "sha256": "0" * 64},
                },
                "archive": {
                    "action": "retain",
                    "retention": {"years": 10, "legal_basis": "tax records: 10 years"},
                    "destinations": ["archive"],
                },
            },
            "by_class": {"general": "erase", "sensitive": "hand_over", "core": "hand_over"},
            "destinations": {
                "archive": {"kind": "local", "path": str(self.out / "dest" / "archive")},
                "successor": {"kind": "local", "path": str(self.out / "dest" / "successor")},
            },
            "recipients": {
                "successor": {
                    "name": "Successor Co.",
                    "contact": {"name": "Desk"},
                    "age_public_key": str(recipient),
                }
            },
            "approval": {"auto_approve": True},
        }
        if rules:
            plan["datasets"] = rules
        return plan

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        s = self.scenario
        for phase in PHASES:
            marked = False
            for position, fault in s.faults:
                if position == f"before:{phase}":
                    if fault.kind == "mark_success":
                        marked = True
                    else:
                        self.fault(fault)
            if marked and phase not in ("delete", "gate_deletion"):
                self.log.append(Step(len(self.log), phase, "marked"))
                continue
            ok = False
            for attempt in range(1 + s.retries):
                ok = self.phase(phase, attempt)
                if ok:
                    break
                for position, fault in s.faults:
                    if position == f"retry:{phase}":
                        self.fault(fault)
            if not ok:
                self.stopped = phase
                break
        self.final()

    def phase(self, name: str, attempt: int = 0, *, rerun: bool = False) -> bool:
        index = len(self.log)
        s = self.scenario
        injected = (
            name == "delete"
            and attempt == 0
            and not rerun
            and (
                s.kill_after is not None
                or s.fail_before is not None
                or (s.block_kill is not None and bool(self.tables))
            )
        )
        try:
            if name == "delete":
                self._delete(attempt)
            elif name == "gate_deletion":
                self.certified = adapter.gate_deletion_(self.p)
            else:
                adapter.PHASES[name](self.p)
        except Exception as exc:  # judged below: I4
            kind = type(exc).__name__
            self.log.append(Step(index, name, "failed", f"{kind}: {exc}"))
            foreign = not isinstance(exc, (RetirementError, Killed))
            if foreign and not injected:
                self.violate(
                    f"I4 {name}{' (re-run)' if rerun else ''} failed with a foreign error "
                    f"{kind}: {exc}\n{''.join(traceback.format_exception(exc)[-8:])[-1500:]}"
                )
            elif not str(exc).strip():
                self.violate(f"I4 {name} failed without a reason ({kind})")
            self.observe(index)
            return False
        self.log.append(Step(index, name, "ok"))
        self.observe(index)
        return True

    def _delete(self, attempt: int) -> None:
        """Delete every requested dataset, as the mapped delete tasks do (the first attempt
        may be killed, see Scenario)."""
        s = self.scenario
        ticks = [0]

        def tick(_rows: int) -> None:
            ticks[0] += 1
            if attempt == 0 and s.kill_after is not None and ticks[0] > s.kill_after:
                raise Killed(f"killed after {s.kill_after} batches")

        blocked = None
        if attempt == 0 and s.block_kill is not None and self.tables and self.db is not None:
            blocked = self.tables[s.block_kill % len(self.tables)]
        with self.p.source() as source:
            context = adapter.delete_context(self.p)  # one per task, as delete_batch makes
            for n, dataset in enumerate(self.p.to_delete):
                if attempt == 0 and s.fail_before is not None and n == s.fail_before:
                    raise Killed(f"killed before dataset {n}")
                if blocked is not None and dataset == adapter.dataset_name(blocked.name):
                    error = self.db.blocked_kill(  # type: ignore[union-attr]
                        blocked,
                        lambda d=dataset: adapter.delete_one(self.p, source, d, tick, context),
                    )
                    if error is not None:
                        raise error
                    continue
                adapter.delete_one(self.p, source, dataset, tick, context)

    # ------------------------------------------------------------------ faults

    def fault(self, f: Fault) -> None:
        index = len(self.log)
        done = getattr(self, f"_fault_{f.kind}")(f)
        self.log.append(Step(index, f"fault:{f.kind}", "done" if done else "noop"))
        self.observe(index)

    def _pick(self, items: list[Any], f: Fault) -> Any:
        return items[f.target % len(items)] if items else None

    def _fault_insert(self, f: Fault) -> bool:
        if self.db is not None:
            t = self._pick(self.tables, f)
            if t is None:
                return False
            if not t.pk and f.arg % 2 and self.model[t.name]:
                tok = sorted(self.model[t.name])[f.arg % len(self.model[t.name])]
                row = self._row_of(t, tok)
                if row is not None:
                    self._insert(t, row, tok)  # an exact duplicate of a row
                    return True
            if t.rule and t.rule.key and t.rows and f.arg % 2:
                base = t.rows[f.arg % len(t.rows)]  # the same plan key, another row
                self._insert(t, base)
                return True
            n = 1000 + len(self.log) + f.arg
            self._insert(t, tuple(value_of(lg, n) for _, lg in t.columns))
            return True
        f_ = self._pick(self.files, f)
        if f_ is None:
            return False
        return self._rewrite(f_, add=True)

    def _row_of(self, t: Table, tok: str) -> tuple[Any, ...] | None:
        assert self.db is not None
        cols = ", ".join(self.db.q(c) for c, _ in t.columns)
        rows = self.db.query(
            f"SELECT {cols} FROM {self.db.q(t.name)} WHERE {self.db.q('tok')} = {self.db.ph()}",
            (tok,),
        )
        return tuple(rows[0]) if rows else None

    def _fault_update(self, f: Fault) -> bool:
        if self.db is not None:
            t = self._pick(self.tables, f)
            if t is None or not self.model[t.name] or t.duplicates:
                return False
            old = sorted(self.model[t.name])[f.arg % len(self.model[t.name])]
            new = self.token()
            if self.db.retoken(t, old, new):
                self.model[t.name][old] -= 1
                self.model[t.name] += Counter()  # drop zero counts
                self.model[t.name][new] += 1
                return True
            return False
        f_ = self._pick(self.files, f)
        return f_ is not None and self._rewrite(f_, add=False)

    def _fault_delete_row(self, f: Fault) -> bool:
        if self.db is None:
            return False
        t = self._pick(self.tables, f)
        if t is None or not self.model[t.name]:
            return False
        tok = sorted(self.model[t.name])[f.arg % len(self.model[t.name])]
        gone = self.db.remove(t, tok)
        self.model[t.name][tok] -= gone
        self.model[t.name] += Counter()
        return gone > 0

    def _read_sheets(self, f: File) -> list[list[str]] | None:
        assert self.folder is not None
        path = self.folder.path(f)
        through = [q for q in path.parents if q.is_relative_to(self.folder.root)]
        if path.is_symlink() or not path.is_file() or any(q.is_symlink() for q in through):
            return None  # the application does not write through a link out of the root
        if f.kind == "xlsx":
            import openpyxl

            book = openpyxl.load_workbook(path)
            return [[r[0] for r in ws.iter_rows(min_row=2, values_only=True)] for ws in book]
        return [list(self.folder.tokens(f).elements())]

    def _rewrite(self, f: File, *, add: bool, sheet: bool = False) -> bool:
        """Change a file: a new row/token appended (``add``) or a token replaced; a workbook
        may get a new sheet (``sheet``)."""
        assert self.folder is not None
        sheets = self._read_sheets(f)
        if sheets is None:
            return False
        names = list(f.sheets)
        if sheet and f.kind == "xlsx":
            names.append(f"New{len(self.log)}")
            sheets.append([self.token()])
        elif add or f.kind == "doc" or not sheets[-1]:
            if f.kind == "doc":
                sheets = [[self.token()]]
            else:
                sheets[-1].append(self.token())
        else:
            sheets[-1][0] = self.token()
        write_file(self.folder.path(f), f.kind, tuple(names), sheets)
        if sheet:
            self.files[self.files.index(f)] = File(
                f.path, f.kind, f.rows, tuple(names), f.rule, f.excluded
            )
        self.model[f.relative] = Counter(t for s in sheets for t in s)
        return True

    def _fault_add_sheet(self, f: Fault) -> bool:
        books = [x for x in self.files if x.kind == "xlsx"]
        book = self._pick(books, f)
        return book is not None and self._rewrite(book, add=True, sheet=True)

    def _fault_symlink_swap(self, f: Fault) -> bool:
        assert self.folder is not None or self.db is not None
        if self.folder is None:
            return False
        nested = [x for x in self.files if len(x.path) > 1]
        victim = self._pick(nested, f)
        if victim is None:
            return False
        top = victim.path[0]
        here = self.folder.root / top
        if here.is_symlink() or not here.is_dir():
            return False
        moved = self.tmp / "moved" / top
        moved.parent.mkdir(exist_ok=True)
        shutil.move(str(here), str(moved))
        for x in self.files:
            if x.path[0] == top:  # moved away by the operator, not by the pipeline
                self.model[x.relative] = Counter()
                twin = self.folder.outside / top / Path(*x.path[1:])
                twin.parent.mkdir(parents=True, exist_ok=True)
                tokens = [
                    [self.token() for _ in range(max(x.rows, 1))] for _ in (x.sheets or ("s",))
                ]
                write_file(twin, x.kind, x.sheets, tokens)
                self.outside.update(t for s in tokens for t in s)
        os.symlink(self.folder.outside / top, here, target_is_directory=True)
        return True

    def _vault_files(self) -> list[Path]:
        return sorted((self.out / "vault").rglob("*.age"))

    def _fault_remove_backup(self, f: Fault) -> bool:
        victim = self._pick(self._vault_files(), f)
        if victim is None:
            return False
        victim.unlink()
        return True

    def _fault_corrupt_backup(self, f: Fault) -> bool:
        victim = self._pick(self._vault_files(), f)
        if victim is None:
            return False
        data = bytearray(victim.read_bytes())
        at = min(len(data) - 4, len(data) * (f.arg % 10) // 10)
        for i in range(at, at + 4):
            data[i] ^= 0x5A
        victim.write_bytes(bytes(data))
        return True

    def _fault_alter_copy(self, f: Fault) -> bool:
        copies = (
            sorted(p for p in (self.out / "dest").rglob("*.age"))
            if (self.out / "dest").exists()
            else []
        )
        victim = self._pick(copies, f)
        if victim is None:
            return False
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        return True

    def _ledger(self) -> sqlite3.Connection:
        return sqlite3.connect(self.out / "ledger.sqlite", timeout=30)

    def _fault_fake_delivered(self, f: Fault) -> bool:
        with self._ledger() as conn:
            rows = conn.execute(
                "SELECT dataset, detail, disposition FROM datasets ORDER BY dataset"
            ).fetchall()
            if not rows:
                return False
            dataset, detail, disposition = rows[f.target % len(rows)]
            d = json.loads(detail)
            backup = d.get("backup")
            if not backup:
                return False
            d["verify"] = {"verified": True, "ciphertext_sha256": backup["ciphertext_sha256"]}
            d["deliveries"] = [
                {
                    "destination": dest,
                    "sha256": backup["ciphertext_sha256"],
                    "location": "file:///fake",
                    "method": "fake",
                }
                for dest in DELIVERS.get(disposition, ())
            ]
            conn.execute(
                "UPDATE datasets SET state = 'delivered', detail = ? WHERE dataset = ?",
                (json.dumps(d, sort_keys=True, separators=(",", ":")), dataset),
            )
        self.tables_edited = True
        return True

    def _fault_edit_event(self, f: Fault) -> bool:
        with self._ledger() as conn:
            rows = conn.execute("SELECT seq, kind, payload FROM events ORDER BY seq").fetchall()
            if not rows:
                return False
            wanted = [r for r in rows if r[1] in ("deletion_approved", "gate_failed")]
            seq, kind, payload = (wanted or rows)[f.target % len(wanted or rows)]
            data = json.loads(payload)
            if kind == "gate_failed":
                conn.execute("UPDATE events SET kind = 'gate_passed' WHERE seq = ?", (seq,))
            else:
                data["edited"] = True
                if "approved_by" in data:
                    data["approved_by"] = "mallory"
                conn.execute(
                    "UPDATE events SET payload = ? WHERE seq = ?",
                    (json.dumps(data, sort_keys=True, separators=(",", ":")), seq),
                )
        if self.chain_broken_at is None:
            self.chain_broken_at = len(self.log)
        return True

    def _fault_edit_plan(self, f: Fault) -> bool:
        plan = json.loads(json.dumps(self.original_plan))
        variant = f.arg % 3
        if variant == 0:  # the successor is dropped: hand_over becomes a plain destroy
            plan["dispositions"]["hand_over"] = {"action": "destroy", "keep_backup_days": 0}
            plan["dispositions"]["archive"] = {"action": "destroy", "keep_backup_days": 0}
            plan.pop("recipients", None)
        elif variant == 1:  # every exclusion lifted
            plan["sources"][0].pop("exclude", None)
        else:  # every table retired with its rows
            for rule in plan.get("datasets", []):
                rule["drop_table"] = True
        self.plan_path.write_text(yaml.safe_dump(plan, allow_unicode=True))
        return True

    def _fault_mark_success(self, f: Fault) -> bool:  # handled by run()
        return False

    def _fault_rerun(self, f: Fault) -> bool:
        self.phase(RERUNNABLE[f.arg % len(RERUNNABLE)], rerun=True)
        return True

    # ------------------------------------------------------------------ the oracle

    def violate(self, what: str) -> None:
        self.violations.append(f"step {len(self.log)}: {what}")

    def current(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        if self.db is not None:
            for t in self.tables:
                out[t.name] = self.db.tokens(t)
        if self.folder is not None:
            for f in self.files:
                out[f.relative] = self.folder.tokens(f)
        return out

    def observe(self, index: int) -> None:
        """Compare the source with the model after step ``index``; judge what vanished."""
        for vault_file in self._vault_files():
            self.appeared.setdefault(str(vault_file), index)
        now = self.current()
        vault: list[dict[str, Any]] | None = None
        for name, want in self.model.items():
            gone = want - now.get(name, Counter())
            for tok, n in gone.items():
                vault = self.backups() if vault is None else vault
                for _ in range(n):
                    self.judge(name, tok, index, vault)
            self.model[name] = want - gone
        if self.folder is not None:
            left = Counter()
            for p in self.folder.outside.rglob("*"):
                if p.is_file():
                    left += bytes_tokens(p.read_bytes(), _kind_of(p))
            if self.outside - left:
                self.violate(
                    f"I2 files outside the source root were changed: {sorted(self.outside - left)}"
                )
                self.outside = left

    def backups(self) -> list[dict[str, Any]]:
        """Every intact backup in the vault: its manifest, tokens, and whether every copy its
        disposition delivers is at its destinations."""
        out = []
        for manifest_path in sorted((self.out / "vault").rglob("*.manifest.json")):
            try:
                m = json.loads(manifest_path.read_bytes())
                cipher = manifest_path.parent / m["ciphertext_file"]
                raw = cipher.read_bytes()
            except (OSError, ValueError, KeyError):
                continue
            sha = hashlib.sha256(raw).hexdigest()
            if sha != m["ciphertext_sha256"]:
                continue
            tokens = self._decrypt_tokens(raw, m)
            if tokens is None:
                continue
            dests = DELIVERS.get(m["disposition"], ())
            delivered = all(
                any(
                    hashlib.sha256(c.read_bytes()).hexdigest() == sha
                    for c in (self.out / "dest" / dest).rglob(cipher.name)
                )
                for dest in dests
            )
            out.append(
                {
                    "manifest": m,
                    "sha": sha,
                    "file": str(cipher),
                    "tokens": tokens,
                    "delivered": delivered,
                }
            )
        return out

    def _decrypt_tokens(self, raw: bytes, m: dict[str, Any]) -> Counter[str] | None:
        try:
            identity = self.p.keys.identity("hunt", m["disposition"])
            packed = pyrage.decrypt(raw, [identity])
            plain = zstandard.ZstdDecompressor().decompressobj().decompress(packed)
        except Exception:  # not decryptable: not safe
            return None
        if m["format"] == "csv":
            return csv_tokens(plain)
        return bytes_tokens(plain, "doc")

    def judge(self, name: str, tok: str, index: int, vault: list[dict[str, Any]]) -> None:
        """The pipeline removed ``tok`` (of table or file ``name``) at step ``index``."""
        self.removed[tok] += 1
        held = [b for b in vault if b["tokens"][tok] >= 1]
        if not held:
            self.violate(f"I1 {name}: {tok} was deleted but is in no intact backup")
            return
        safe = [b for b in held if b["delivered"]]
        if not safe:
            self.violate(
                f"I1 {name}: {tok} was deleted; its backup "
                f"({held[0]['manifest']['dataset']}, {held[0]['manifest']['disposition']}) "
                "was not delivered where its disposition says"
            )
            return
        self.removed_by.setdefault(safe[0]["manifest"]["dataset"], []).append(tok)
        problems = [self._protocol(b, index) for b in safe]
        if all(problems):
            self.violate(f"I6 {name}: {tok} deleted at step {index}: {problems[0]}")

    def _protocol(self, b: dict[str, Any], t: int) -> str:
        """Why deleting from backup ``b`` at step ``t`` broke the protocol ('' if it did not)."""
        if self.chain_broken_at is not None and self.chain_broken_at < t:
            return f"the ledger's chain was broken at step {self.chain_broken_at}"
        born = self.appeared.get(b["file"], t)
        ok = [s for s in self.log if s.status == "ok" and s.index < t]

        def last(name: str, after: int = -1) -> int | None:
            found = [s.index for s in ok if s.what == name and s.index > after]
            return found[-1] if found else None

        requests = [s.index for s in ok if s.what == "request"]
        if not requests:
            return "no deletion request was made"
        q = requests[-1]
        approve = last("approve", q)
        if approve is None:
            return f"no approval after the request of step {q}"
        gb = [s.index for s in ok if s.what == "gate_backup" and born < s.index < q]
        if not gb:
            return f"no gate_backup passed between the backup (step {born}) and the request"
        if DELIVERS.get(b["manifest"]["disposition"]):
            gt = [s.index for s in ok if s.what == "gate_transfer" and gb[0] < s.index < q]
            if not gt:
                return "no gate_transfer passed between gate_backup and the request"
        failed = [
            s for s in self.log if s.what in GATES and s.status == "failed" and q < s.index < t
        ]
        if failed:
            return f"{failed[0].what} failed at step {failed[0].index}, after the request"
        newer = [
            f
            for f, born_at in self.appeared.items()
            if q < born_at < t and Path(f).parent == Path(b["file"]).parent
        ]
        if newer:
            return "a newer backup of the dataset appeared after the request"
        return ""

    def final(self) -> None:
        if self.chain_broken_at is None and not self.tables_edited:
            try:
                self.p.ledger.verify()
            except RetirementError as exc:
                self.violate(f"I5 the ledger does not verify, though nobody edited it: {exc}")
        if not self.certified:
            return
        now = self.current()
        left = Counter()
        for c in now.values():
            left += c
        by_sha = {b["sha"]: b for b in self.backups()}
        for path in self.certified:
            cert = json.loads(Path(path).read_bytes())
            b = by_sha.get(adapter.certified_backup(cert))
            if b is None:
                continue  # crypto-erased since (keep_backup_days 0): judged when deleted
            remaining = sorted((b["tokens"] & left).elements())
            if remaining:
                self.violate(
                    f"I3 {Path(path).name} certifies a deletion, but {remaining} of its backup "
                    "are still at the source"
                )
            vanished = sum(b["tokens"].values()) - len(remaining)
            claimed = adapter.claimed_deleted(cert)
            if claimed != vanished:
                self.violate(
                    f"I3 {Path(path).name} ({b['manifest']['dataset']}) certifies {claimed} "
                    f"deleted; {vanished} of its backup vanished"
                )


def _printable(name: str) -> bool:
    """Whether a plan (UTF-8 YAML) can name it: no byte that is not UTF-8."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in name)


def _kind_of(path: Path) -> str:
    return {".csv": "csv", ".xlsx": "xlsx"}.get(path.suffix, "doc")


def hunt(scenario: Scenario, tmp: Path, db_url: str | None = None) -> World:
    """Run one scenario; the world holds the violations found."""
    world = World(scenario, tmp, db_url)
    try:
        world.run()
    finally:
        world.close()
    return world
