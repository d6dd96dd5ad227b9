"""Hypothesis strategies for hunts: random schemas, names, key types, file trees and faults."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.deletion_model.backends import File, Rule, Table, value_of
from tests.deletion_model.world import FAULTS, PHASES, Fault, Scenario

KEY_TYPES = {
    "sqlite": ("int", "text", "real", "sqlite_datetime", "bytes"),
    "postgres": (
        "int",
        "bigint",
        "text",
        "char",
        "uuid",
        "numeric",
        "float",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "bool",
        "bytes",
    ),
    "mysql": (
        "int",
        "bigint",
        "text",
        "char",
        "numeric",
        "float",
        "date",
        "time",
        "timestamp",
        "bool",
        "bytes",
    ),
}
TABLE_NAMES = ("people", "t#2", "log.2024", "Mixed Case", "a|b", "人员", "p%41", "applog")
DISPOSITIONS = ("erase", "erase_now", "hand_over", "archive")
SEGMENTS = ("a", "b#1", "c.d", "é", "x y", "%41", "\udcff", "docs")
LEAVES = ("report", "report#2024.txt", "book.xlsx", "c#1.csv", "list.csv", "note.txt", "é.pdf")
SHEETS = ("A", "B#1", "Sheet 3")
POSITIONS = (
    *(f"before:{p}" for p in PHASES[3:]),
    "retry:delete",
    "retry:gate_deletion",
    "retry:gate_backup",
    "retry:gate_transfer",
)


def _rule_ok(name: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in name)


@st.composite
def rules(draw: st.DrawFn, columns: tuple[str, ...], pk: tuple[str, ...], table: bool) -> Rule:
    key: tuple[str, ...] = ()
    if table and draw(st.integers(0, 5)) == 0:
        key = (draw(st.sampled_from(columns)),)  # a plan key, possibly not unique
    return Rule(
        disposition=draw(st.sampled_from(DISPOSITIONS)),
        key=key if key != pk else (),
        drop_table=table and draw(st.integers(0, 4)) == 0,
    )


@st.composite
def tables(draw: st.DrawFn, backend: str, index: int) -> Table:
    name = draw(st.sampled_from(TABLE_NAMES)) + (f"_{index}" if index else "")
    nkey = draw(st.integers(0, 2))
    types = [draw(st.sampled_from(KEY_TYPES[backend])) for _ in range(nkey)]
    columns = [(f"k{i}", t) for i, t in enumerate(types)] + [("val", "text")]
    pk = tuple(f"k{i}" for i in range(nkey))
    nrows = draw(st.integers(0, 7))
    null_part = (
        backend == "sqlite" and nkey == 2 and types[1] in ("text", "bytes") and draw(st.booleans())
    )
    dup_vals = draw(st.booleans())
    rows = []
    for r in range(nrows):
        keys = [value_of(t, r) for t in types]
        if null_part and r % 2:
            keys[1] = None
        rows.append((*keys, value_of("text", r % 3 if dup_vals else r)))
    rule = None
    if _rule_ok(name) and draw(st.booleans()):
        rule = draw(rules(tuple(c for c, _ in columns), pk, table=True))
    return Table(
        name=name,
        columns=tuple(columns),
        pk=pk,
        rows=tuple(rows),
        duplicates=draw(st.integers(0, 2)) if nkey == 0 else 0,
        rule=rule,
        excluded=draw(st.integers(0, 5)) == 0,
    )


@st.composite
def files(draw: st.DrawFn) -> File:
    depth = draw(st.integers(0, 2))
    path = (*(draw(st.sampled_from(SEGMENTS)) for _ in range(depth)), draw(st.sampled_from(LEAVES)))
    leaf = path[-1]
    kind = "xlsx" if leaf.endswith(".xlsx") else "csv" if leaf.endswith(".csv") else "doc"
    sheets = tuple(draw(st.lists(st.sampled_from(SHEETS), min_size=1, max_size=3, unique=True)))
    relative = "/".join(path)
    rule = None
    if _rule_ok(relative) and draw(st.booleans()):
        rule = draw(rules((), (), table=False))
    return File(
        path=path,
        kind=kind,
        rows=draw(st.integers(0, 4)),
        sheets=sheets if kind == "xlsx" else (),
        rule=rule,
        excluded=draw(st.integers(0, 3)) == 0,
    )


@st.composite
def faults(draw: st.DrawFn) -> tuple[str, Fault]:
    return (
        draw(st.sampled_from(POSITIONS)),
        Fault(draw(st.sampled_from(FAULTS)), draw(st.integers(0, 5)), draw(st.integers(0, 9))),
    )


@st.composite
def scenarios(draw: st.DrawFn, backend: str) -> Scenario:
    if backend == "files":
        drawn = draw(st.lists(files(), min_size=1, max_size=5))
        seen: set[str] = set()
        unique = []
        for f in drawn:  # one file per path, and no file where a folder is needed
            parents = {"/".join(f.path[:i]) for i in range(1, len(f.path))}
            if (
                f.relative in seen
                or parents & seen
                or any(s.startswith(f.relative + "/") for s in seen)
            ):
                continue
            seen.add(f.relative)
            unique.append(f)
        if all(f.excluded for f in unique):  # something to retire
            unique[0] = File(
                unique[0].path, unique[0].kind, unique[0].rows, unique[0].sheets, unique[0].rule
            )
        tabs: tuple[Table, ...] = ()
        fls = tuple(unique)
    else:
        tabs = tuple(draw(tables(backend, i)) for i in range(draw(st.integers(1, 3))))
        if all(t.excluded for t in tabs):
            t = tabs[0]
            tabs = (Table(t.name, t.columns, t.pk, t.rows, t.duplicates, t.rule), *tabs[1:])
        fls = ()
    return Scenario(
        backend=backend,
        tables=tabs,
        files=fls,
        faults=tuple(draw(st.lists(faults(), max_size=4))),
        retries=draw(st.integers(0, 2)),
        kill_after=draw(st.none() | st.integers(0, 3)),
        fail_before=draw(st.none() | st.integers(0, 2)),
        block_kill=(
            draw(st.none() | st.integers(0, 2)) if backend in ("postgres", "mysql") else None
        ),
    )
