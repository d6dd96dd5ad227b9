"""The dossier's ledger.jsonl and head.json (evidence.chain_export): the run's events only,
other runs' events reduced to their hashes, linked to the event before them, and
recomputed by a POSIX shell loop with sha256sum as docs/audit.md says."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest

from retirement.evidence.chain_export import audit_run_chain, export_run_chain
from retirement.ledger.core import Ledger

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.ledger.chain import Event

# docs/audit.md's loop over a dossier's ledger.jsonl, from head.json's prev_hash.
SHELL_LOOP = r"""
h=$2
while IFS= read -r line; do
  case $line in
    '{"line_sha256":"'*) d=$(printf '%s' "$line" | cut -c17-80) ;;
    *) d=$(printf '%s' "$line" | sha256sum | cut -c1-64) ;;
  esac
  h=$(printf '%s%s' "$h" "$d" | sha256sum | cut -c1-64)
done < "$1"
printf '%s\n' "$h"
"""


@pytest.fixture
def two_runs(tmp_path: Path) -> Ledger:
    """Runs "a" and "b" of two companies, their events interleaved, after one of "z"."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    ledger.append("run_started", actor="t", run_id="z", payload={"company": "earlier"})
    for i in range(3):
        ledger.append("step", actor="t", run_id="a", dataset=f"crm.t{i}", payload={"i": i})
        ledger.append("step", actor="t", run_id="b", payload={"secret": "other company"})
    ledger.append("global", actor="t", payload={"ratio": 0.5})
    yield ledger
    ledger.close()


def _export(ledger: Ledger, folder: Path, run_id: str) -> tuple[dict, list[Event]]:
    seen: list[Event] = []
    chain = export_run_chain(ledger, run_id, folder / "ledger.jsonl", seen.append)
    head = {"run_id": run_id, **chain}
    (folder / "head.json").write_text(json.dumps(head))
    return head, seen


def test_ledger_jsonl_holds_the_run_and_only_the_hashes_of_other_events(
    two_runs: Ledger, tmp_path: Path
) -> None:
    head, seen = _export(two_runs, tmp_path, "a")
    text = (tmp_path / "ledger.jsonl").read_text()
    assert "other company" not in text
    assert "earlier" not in text  # before the run's first event: only its link
    lines = text.splitlines()
    assert len(lines) == 7  # events 2 to 8: a, b, a, b, a, b, global
    assert [json.loads(x).get("run_id") for x in lines[:6:2]] == ["a", "a", "a"]
    assert all(json.loads(x)["omitted"] is True for x in [*lines[1::2], lines[6]])
    events = list(two_runs.events())
    assert head["from_seq"] == 2
    assert head["prev_hash"] == events[0].hash  # the link to the event before the run
    assert (head["events"], head["chain_head"]) == (8, two_runs.head())
    assert (head["run_events"], head["omitted"]) == (3, 4)
    assert [e.seq for e in seen] == [2, 4, 6]
    problems, found = audit_run_chain(tmp_path, head)
    assert problems == []
    assert [(e.seq, e.dataset, e.payload) for e in found] == [
        (2, "crm.t0", {"i": 0}),
        (4, "crm.t1", {"i": 1}),
        (6, "crm.t2", {"i": 2}),
    ]
    out = subprocess.run(
        ["sh", "-c", SHELL_LOOP, "sh", str(tmp_path / "ledger.jsonl"), head["prev_hash"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == head["chain_head"]


def _flip(line: str, at: int) -> str:
    return line[:at] + ("1" if line[at] == "0" else "0") + line[at + 1 :]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda ls: ls[:1] + ls[2:], "not a valid|fields or sequence", id="drop"),
        pytest.param(lambda ls: [ls[2], ls[1], ls[0], *ls[3:]], "sequence", id="reorder"),
        pytest.param(
            lambda ls: [ls[0].replace('{"i":0}', '{"i":9}'), *ls[1:]], "ends at", id="edit"
        ),
        pytest.param(
            lambda ls: [ls[0].replace('"payload":{', '"payload": {'), *ls[1:]],
            "canonical",
            id="not-canonical",
        ),
        pytest.param(lambda ls: [ls[0], _flip(ls[1], 16), *ls[2:]], "ends at", id="stub-hash"),
        pytest.param(lambda ls: ls[:-1], "ends at event 7", id="cut"),
    ],
)
def test_every_change_to_ledger_jsonl_is_caught(
    two_runs: Ledger, tmp_path: Path, edit, message: str
) -> None:
    head, _seen = _export(two_runs, tmp_path, "a")
    path = tmp_path / "ledger.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("".join(x + "\n" for x in edit(lines)))
    problems, _found = audit_run_chain(tmp_path, head)
    assert len(problems) == 1
    assert pytest.importorskip("re").search(message, problems[0]), problems


def test_an_event_of_another_run_shown_in_full_is_refused(two_runs: Ledger, tmp_path: Path) -> None:
    head, _seen = _export(two_runs, tmp_path, "a")
    events = list(two_runs.events())
    path = tmp_path / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = events[2].line()  # run b's event: it links, but is not this dossier's
    path.write_text("".join(x + "\n" for x in lines))
    problems, _found = audit_run_chain(tmp_path, head)
    assert problems == ["ledger.jsonl: event 3 is of another run (b)"]


def test_a_run_that_starts_the_ledger_links_to_the_genesis_hash(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    ledger.append("run_started", actor="t", run_id="a")
    head, _seen = _export(ledger, tmp_path, "a")
    assert (head["from_seq"], head["prev_hash"]) == (1, "0" * 64)
    assert audit_run_chain(tmp_path, head) == ([], audit_run_chain(tmp_path, head)[1])
    head["prev_hash"] = "1" * 64
    assert "genesis" in audit_run_chain(tmp_path, head)[0][0]
    ledger.close()


def test_a_run_across_the_upgrade_to_encoding_3_verifies(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from retirement.ledger.encoding import META_KEY

    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    Ledger.open(url).close()
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("DELETE FROM ledger_meta WHERE key = :k"), {"k": META_KEY})
        conn.execute(sa.text("UPDATE ledger_meta SET value = '2' WHERE key = 'format_version'"))
    old = Ledger.open(url, create=False)  # as format 2 wrote
    old.append("step", actor="t", run_id="a", payload={"ratio": 1.0})
    old.append("step", actor="t", run_id="b", payload={"x": 1})
    old.close()
    ledger = Ledger.open(url)  # upgraded: encoding 3 from event 3
    ledger.append("step", actor="t", run_id="b", payload={"x": 2})
    ledger.append("step", actor="t", run_id="a", payload={"ratio": 1.0})
    head, _seen = _export(ledger, tmp_path, "a")
    assert head["encoding_3_from"] == 3
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert '"prev":' in lines[0]  # encoding 2 shows the previous hash inside
    assert lines[1].startswith('{"hash":')  # an encoding 2 event of another run
    assert lines[2].startswith('{"line_sha256":')
    problems, found = audit_run_chain(tmp_path, head)
    assert problems == []
    assert [e.payload for e in found] == [{"ratio": 1.0}, {"ratio": 1}]
    ledger.close()
