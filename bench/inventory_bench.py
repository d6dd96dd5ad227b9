"""Inventory scan benchmark: our detectors against Microsoft Presidio, and a PostgreSQL table scan.

    .venv/bin/pip install -r bench/requirements-bench.txt
    .venv/bin/python bench/inventory_bench.py [--rows 5000000] [--presidio-cells 5000]

1. Precision and recall of both engines on labeled cells (valid identifiers, near misses,
   noise). Presidio runs with a blank spaCy pipeline (spacy.blank("zh"): no model download)
   and pattern recognizers equivalent to ours, checksums included.
2. Throughput in memory: cells per second of each engine on the same cells.
3. End to end: a PostgreSQL table of ``--rows`` rows x 10 columns scanned with
   ``scan_dataset`` (full and sampled), each in a fresh process for its peak RSS, and
   ``pg_dump -t`` of the same table as the reference for raw export speed.

Results go to stdout and to bench/RESULTS.md ("## Inventory scan").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT / "bench"))

import inventory_e2e as e2e  # noqa: E402
from inventory_hard import hard_labeled  # noqa: E402
from inventory_report import report_lines  # noqa: E402

from retirement.inventory.detect import BUILTIN, ColumnScanner  # noqa: E402
from retirement.inventory.engine import EngineScanner, column_hits, to_strings  # noqa: E402
from retirement.inventory.rules import rules_for  # noqa: E402
from retirement.model.identifiers import (  # noqa: E402
    is_valid_resident_id,
    is_valid_uscc,
    luhn_check_digit,
    luhn_ok,
    ric_check_char,
    uscc_check_char,
)

PG = "postgresql://postgres@127.0.0.1:5432"
TYPES = [
    "cn_resident_id",
    "cn_uscc",
    "bank_card",
    "cn_mobile",
    "cn_landline",
    "email",
    "passport",
    "ip_address",
    "person_name",
    "address",
]
SURNAMES, GIVEN = "王李张刘陈杨黄赵吴周徐孙马朱胡", "伟芳娜敏静磊洋艳勇军杰娟涛明超"


# ---------------------------------------------------------------------------- data


def _rid(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 60))
    region = rng.choice(["110101", "310115", "440305", "510104"])
    body = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + ric_check_char(body)


def _wrong_last(s: str) -> str:
    return s[:-1] + ("0" if s[-1] != "0" else "1")


def labeled_cell(rng: random.Random) -> tuple[str, str | None]:
    """One cell and its true type (None: not personal data)."""
    kind = rng.randrange(16)
    if kind == 0:
        return _rid(rng), "cn_resident_id"
    if kind == 1:
        return f"客户 {_rid(rng)} 来电投诉物流", "cn_resident_id"
    if kind == 2:
        body = (
            "91"
            + rng.choice(["310000", "440300"])
            + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
        )
        return body + uscc_check_char(body), "cn_uscc"
    if kind == 3:
        body = "62" + "".join(str(rng.randrange(10)) for _ in range(15))
        return body + luhn_check_digit(body), "bank_card"
    if kind == 4:
        return f"1{rng.choice('3589')}{rng.randrange(10**9):09d}", "cn_mobile"
    if kind == 5:
        return f"021-{rng.randrange(2 * 10**7, 10**8)}", "cn_landline"
    if kind == 6:
        return f"user{rng.randrange(10**6)}@example.com", "email"
    if kind == 7:
        return f"E{rng.randrange(10**8):08d}", "passport"
    if kind == 8:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}", "ip_address"
    if kind == 9:
        return rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN), "person_name"
    if kind == 10:
        return f"上海市浦东新区世纪大道{rng.randrange(1, 999)}号", "address"
    # near misses and noise: none of these is personal data
    noise = [
        _wrong_last(_rid(rng)),  # an 18-digit order number failing MOD 11-2
        _wrong_last("62" + "".join(str(rng.randrange(10)) for _ in range(15)) + "0"),
        f"{rng.randrange(1, 9)}.{rng.randrange(20)}.{rng.randrange(20)}",  # a version
        f"{rng.uniform(1, 9999):.2f}",
        f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        rng.choice(["物流太慢，希望改进", "The parcel arrived damaged.", "paid", "shipped"]),
        f"SKU-{rng.randrange(10**8):08d}",
        str(rng.randrange(10**11, 10**12)),  # 12 digits
    ]
    return rng.choice(noise), None


def labeled(n: int, seed: int = 7) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    return [labeled_cell(rng) for _ in range(n)]


# ---------------------------------------------------------------------------- Presidio


def presidio_engine():
    """AnalyzerEngine on a blank Chinese spaCy pipeline with recognizers equivalent to ours."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankEngine(SpacyNlpEngine):
        def __init__(self) -> None:
            super().__init__(models=[{"lang_code": "zh", "model_name": "blank"}])
            self.nlp = {"zh": spacy.blank("zh")}

        def load(self) -> None:  # nothing to download
            return

    class Checked(PatternRecognizer):
        def __init__(self, entity: str, regex: str, check, context=None) -> None:
            super().__init__(
                supported_entity=entity,
                supported_language="zh",
                patterns=[Pattern(entity, regex, 0.5)],
                context=context,
            )
            self._checker = check

        def validate_result(self, pattern_text: str) -> bool | None:
            return self._checker(pattern_text) if self._checker else None

    def digits(s: str) -> str:
        return "".join(c for c in s if c.isdigit())

    specs = {
        "cn_resident_id": (r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])", is_valid_resident_id),
        "cn_uscc": (
            r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])",
            lambda s: is_valid_uscc(s) and not is_valid_resident_id(s),
        ),
        "bank_card": (
            r"(?<!\d)\d{13,19}(?!\d)",
            lambda s: luhn_ok(digits(s)) and not is_valid_resident_id(s) and s[0] in "3456",
        ),
        "cn_mobile": (r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)", None),
        "cn_landline": (
            r"(?<![\d+])\(?0(?:10|2\d|[3-9]\d{2})\)?[ -]?[2-9]\d{2,3}[ -]?\d{4}(?!\d)",
            None,
        ),
        "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b", None),
        "passport": (r"(?<![A-Za-z0-9])(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7})(?![A-Za-z0-9])", None),
        "ip_address": (
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
            r"(?![\d.])",
            None,
        ),
        "person_name": ("^[" + SURNAMES + "][\u4e00-\u9fff]{1,2}$", None),
        "address": (r"(?:省|市|区|县).{0,20}?(?:路|街|道|号)", None),
    }
    registry = RecognizerRegistry(supported_languages=["zh"])
    for entity, (regex, check) in specs.items():
        registry.add_recognizer(Checked(entity, regex, check))
    return AnalyzerEngine(registry=registry, nlp_engine=BlankEngine(), supported_languages=["zh"])


# ---------------------------------------------------------------------------- quality


def score(
    cells: list[tuple[str | None, object]], found: list[set[str]]
) -> dict[str, dict[str, float]]:
    out = {}
    for t in [*TYPES, "all"]:
        tp = fp = fn = 0
        for (_, truth), got in zip(cells, found, strict=True):
            want = set(truth) if isinstance(truth, set) else {truth} if truth else set()
            if t != "all":
                want, got = want & {t}, got & {t}
            tp += len(want & got)
            fp += len(got - want)
            fn += len(want - got)
        out[t] = {
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
        }
    return out


def reference_found(cells: list[tuple[str | None, object]]) -> list[set[str]]:
    dets = [(n, BUILTIN[n].hit) for n in TYPES]
    return [{n for n, hit in dets if v and v.strip() and hit(v)} for v, _ in cells]


def ours_found(cells: list[tuple[str | None, object]]) -> list[set[str]]:
    """The column engine's hits per cell (the cells as one column)."""
    _, hits = column_hits(
        rules_for({n: BUILTIN[n] for n in TYPES}), to_strings([v for v, _ in cells])
    )
    found: list[set[str]] = [set() for _ in cells]
    for name, h in hits.items():
        for i in h.hit.nonzero()[0]:
            found[i].add(name)
    return found


def presidio_found(engine, cells: list[tuple[str | None, object]]) -> list[set[str]]:
    return [
        {r.entity_type for r in engine.analyze(text=v, language="zh", entities=TYPES)}
        if v and v.strip()
        else set()
        for v, _ in cells
    ]


def load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def engine_rate(cells: list[str]) -> tuple[float, float, str]:
    """(cells/s wall, cells/s of CPU time, load average) of EngineScanner over one column."""
    column = to_strings(cells)
    wall, cpu = time.perf_counter(), time.process_time()
    scanner = EngineScanner()
    for i in range(0, len(column), 65_536):
        scanner.feed(column.slice(i, 65_536))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(cells) / wall, len(cells) / cpu, load()


# ---------------------------------------------------------------------------- PostgreSQL


def customer_row(rng: random.Random, i: int) -> tuple:
    """Row ``i`` of the benchmark's ``customers`` table (10 columns)."""
    card = "62" + "".join(str(rng.randrange(10)) for _ in range(15))
    return (
        i,
        rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
        _rid(rng),
        f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
        f"u{i}@example.com",
        f"上海市浦东新区世纪大道{i % 999 + 1}号",
        card + luhn_check_digit(card),
        f"10.{i % 256}.{i // 256 % 256}.{i % 250 + 1}",
        "物流太慢" if i % 3 else f"客户 {_rid(rng)} 来电",
        f"{i % 10000}.50",
    )


def load_table(db: str, rows: int) -> float:
    """A fresh PostgreSQL database ``db`` with ``rows`` generated customers (other benchmarks
    use it); seconds taken."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "customers.csv"
        return e2e.write_rows(data, rows, customer_row) + e2e.load_pg(db, data)


# ---------------------------------------------------------------------------- main


def _quality(args: argparse.Namespace) -> dict:
    cells = labeled(args.cells)
    ours = ours_found(cells)
    assert ours == reference_found(cells), "the engine disagrees with the per-value reference"
    hard = hard_labeled(args.hard_cells)
    hard_ours = ours_found(hard)
    assert hard_ours == reference_found(hard), "the engine disagrees with the reference (hard)"
    engine = presidio_engine()
    engine.analyze(text="warm up 13812345678", language="zh")
    sub = cells[: args.presidio_cells]
    t = time.perf_counter()
    theirs = presidio_found(engine, sub)
    presidio_rate = len(sub) / (time.perf_counter() - t)
    presidio_load = load()
    return {
        "n": len(cells),
        "sub": len(sub),
        "ours": score(sub, ours[: len(sub)]),
        "theirs": score(sub, theirs),
        "ours_all": score(cells, ours),
        "hard_n": len(hard),
        "hard_ours": score(hard, hard_ours),
        "hard_theirs": score(hard, presidio_found(engine, hard)),
        "presidio_rate": presidio_rate,
        "presidio_load": presidio_load,
    }


def _throughput() -> dict:
    cells = [v for v, _ in labeled(200_000, seed=9)]
    rate, cpu_rate, engine_load = engine_rate(cells)
    t = time.perf_counter()
    scanner = ColumnScanner()
    for i in range(0, len(cells), 10_000):
        scanner.feed(cells[i : i + 10_000])
    scanner_rate = len(cells) / (time.perf_counter() - t)
    return {
        "engine": rate,
        "engine_cpu": cpu_rate,
        "engine_load": engine_load,
        "scanner": scanner_rate,
        "scanner_load": load(),
    }


def _end_to_end(args: argparse.Namespace) -> dict:
    """The same generated rows in PostgreSQL (``--rows`` and a fifth of them), MariaDB and a
    folder of CSV and JSON-lines files, each scanned in full against its standard client."""
    pg_db, small_db, my_db = "bench_inventory", "bench_inventory_small", "bench_inventory"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / "customers.csv"
    out: dict = {"rows": args.rows, "generate_s": e2e.write_rows(data, args.rows, customer_row)}
    out["load_s"] = e2e.load_pg(pg_db, data)
    out["full"] = e2e.scan("sql", f"{e2e.PG}/{pg_db}")
    out["full_one"] = e2e.scan("sql", f"{e2e.PG}/{pg_db}", workers=False)
    out["sampled"] = e2e.scan("sql", f"{e2e.PG}/{pg_db}", full=False)
    out["dump"] = e2e.pg_dump(pg_db)
    e2e.load_pg(small_db, data, args.rows // 5)
    out["small"] = e2e.scan("sql", f"{e2e.PG}/{small_db}")
    out["small_dump"] = e2e.pg_dump(small_db)
    out["my_load_s"] = e2e.load_my(my_db, data)
    out["my"] = e2e.scan("sql", f"{e2e.MY}/{my_db}")
    out["my_peer"] = e2e.mysql_quick(my_db)
    folder = work / "folder"
    out["folder_files"] = e2e.make_folder(folder, data, args.csv_copies, args.jsonl_rows)
    out["folder"] = e2e.scan("files", str(folder))
    out["cat"] = e2e.cat(folder)
    if not args.keep:
        e2e.drop([pg_db, small_db], [my_db])
        for f in folder.iterdir():
            f.unlink()
        data.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--cells", type=int, default=20_000, help="labeled cells for quality")
    ap.add_argument("--hard-cells", type=int, default=2_000, help="cells of the harder set")
    ap.add_argument("--presidio-cells", type=int, default=5_000)
    ap.add_argument("--keep", action="store_true", help="keep the databases and files")
    ap.add_argument("--work", default="/tmp/inventory_bench", help="where the files go")
    ap.add_argument("--csv-copies", type=int, default=2, help="copies of the rows as CSV files")
    ap.add_argument("--jsonl-rows", type=int, default=1_000_000, help="rows as JSON lines")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    q = _quality(args)
    tp = _throughput()
    e2e = _end_to_end(args)
    text = "\n".join(report_lines(args, q, tp, e2e))
    sys.stdout.write(text + "\n")
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", "## Inventory scan", text)


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace (or append) one '## ' section of RESULTS.md."""
    old = (
        path.read_text()
        if path.exists()
        else "# Benchmark results\n\nEach section says the command that produced it.\n\n"
    )
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        new = old[:start] + text + (old[end + 1 :] if end >= 0 else "")
    path.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
