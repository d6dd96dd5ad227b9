"""The "## Inventory scan" section of bench/RESULTS.md, from one run of inventory_bench.py."""

from __future__ import annotations

import json
import os
import platform
from datetime import date

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


def _per_type(ours: dict, theirs: dict) -> list[str]:
    return [
        "| type | ours P | ours R | Presidio P | Presidio R |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {t} | {ours[t]['precision']:.3f} | {ours[t]['recall']:.3f} | "
            f"{theirs[t]['precision']:.3f} | {theirs[t]['recall']:.3f} |"
            for t in [*TYPES, "all"]
        ],
    ]


def _quality(q: dict) -> list[str]:
    ours, theirs, every = q["ours"]["all"], q["theirs"]["all"], q["ours_all"]["all"]
    return [
        "Quality on the labeled cells (identifiers, near misses with wrong check digits, order "
        "numbers, versions, free text; the same cells for both engines). The engine's answer "
        "per cell was checked equal to the per-value reference on every cell of both sets:",
        "",
        "| engine | cells | precision | recall |",
        "|---|---:|---:|---:|",
        f"| ours (column engine) | {q['sub']:,} | {ours['precision']:.4f} | {ours['recall']:.4f} |",
        f"| Presidio 2.2.366 (blank zh pipeline, equivalent recognizers) | {q['sub']:,} | "
        f"{theirs['precision']:.4f} | {theirs['recall']:.4f} |",
        f"| ours, all cells | {q['n']:,} | {every['precision']:.4f} | {every['recall']:.4f} |",
        "",
        "Per type, labeled set:",
        "",
        *_per_type(q["ours"], q["theirs"]),
        "",
        f"Harder labeled set ({q['hard_n']:,} cells, bench/inventory_hard.py: identifiers inside "
        "Chinese and English sentences, wrong check digits, order numbers and phone-like numbers "
        "that are no phones, a mixed column with 5% IDs, a NULL-heavy column, long text cells "
        "of 1-4 KB), per type:",
        "",
        *_per_type(q["hard_ours"], q["hard_theirs"]),
    ]


def _throughput(q: dict, tp: dict) -> list[str]:
    return [
        "Throughput in memory, one process (200,000 mixed labeled cells as one column; "
        "Presidio on the labeled subsample). Load average (1/5/15 min) when each was measured:",
        "",
        "| engine | cells/s (wall) | load |",
        "|---|---:|---|",
        f"| ours, column engine (EngineScanner, 65,536-cell batches) | {tp['engine']:,.0f} | "
        f"{tp['engine_load']} |",
        f"| ours, column engine, cells per CPU-second | {tp['engine_cpu']:,.0f} | "
        f"{tp['engine_load']} |",
        f"| ours, per-value reference (ColumnScanner) | {tp['scanner']:,.0f} | "
        f"{tp['scanner_load']} |",
        f"| Presidio AnalyzerEngine.analyze per cell | {q['presidio_rate']:,.0f} | "
        f"{q['presidio_load']} |",
        f"| **ratio engine / Presidio** | **{tp['engine'] / q['presidio_rate']:,.0f}x** | |",
        f"| ratio engine / per-value reference | {tp['engine'] / tp['scanner']:,.1f}x | |",
    ]


def _row(name: str, r: dict, cells: int, peer_s: float | None) -> str:
    ratio = f"{r['seconds'] / peer_s:.1f}x" if peer_s else ""
    rss = f"{r['rss_mb']:.0f} / {r['children_rss_mb']:.0f}"
    cpu = f"{r['cpu']:.1f} / {r['children_cpu']:.1f}"
    return (
        f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {cells / r['seconds']:,.0f} | "
        f"{ratio} | {rss} | {cpu} | {r['load']} |"
    )


def _peer(name: str, r: dict, rows: int, cells: int) -> str:
    return (
        f"| {name} | {rows:,} | {r['seconds']:.1f} | {cells / r['seconds']:,.0f} | | - | - | "
        f"{r['load']} |"
    )


def _end_to_end(args, e2e: dict) -> list[str]:
    rows, small = e2e["rows"], e2e["small"]["rows"]
    cells, small_cells = rows * 10, small * 10
    files = e2e["folder_files"]
    folder, parts = e2e["folder"], e2e["folder"]["parts"]
    folder_cells = folder["rows"] * 10
    dump, small_dump = e2e["dump"]["seconds"], e2e["small_dump"]["seconds"]
    return [
        f"End to end: the same generated `customers` rows ({rows:,} x 10 columns; generated "
        f"as CSV in {e2e['generate_s']:.0f} s) in PostgreSQL (COPY, {e2e['load_s']:.0f} s), "
        f"in MariaDB (LOAD DATA, {e2e['my_load_s']:.0f} s) and as a folder of "
        f"{files['files']} files ({files['bytes'] / 2**30:.2f} GiB: {args.csv_copies} copies "
        f"of the rows as CSV files of about 256 MiB, {files['csv_bytes'] / 2**30:.2f} GiB, and "
        f"the first {args.jsonl_rows:,} rows as JSON lines, "
        f"{files['jsonl_bytes'] / 2**30:.2f} GiB). Each scan is `scan_dataset` full in a fresh "
        "process (two processes where it starts its worker: peak RSS and CPU seconds are "
        "given for the scanning process / its children, the worker and psql); each peer is "
        "the standard client writing the same data to /dev/null.",
        "",
        "| run | rows | seconds | cells/s | ours / peer | peak RSS MB | CPU s | load at end |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        _row("PostgreSQL, scan_dataset full (two processes)", e2e["full"], cells, dump),
        _row("PostgreSQL, scan_dataset full (one process)", e2e["full_one"], cells, dump),
        _peer("`pg_dump -t customers > /dev/null`", e2e["dump"], rows, cells),
        _row(
            "PostgreSQL, scan_dataset full, a fifth of the rows",
            e2e["small"],
            small_cells,
            small_dump,
        ),  # fmt: skip
        _peer("`pg_dump -t customers > /dev/null`", e2e["small_dump"], small, small_cells),
        _row("MariaDB, scan_dataset full", e2e["my"], cells, e2e["my_peer"]["seconds"]),
        _peer(
            "`mysql --quick -e 'select * from customers' > /dev/null`", e2e["my_peer"], rows, cells
        ),  # fmt: skip
        _row("folder, scan_dataset of every file", folder, folder_cells, e2e["cat"]["seconds"]),
        _peer("`cat FILES > /dev/null`", e2e["cat"], folder["rows"], folder_cells),
        f"| scan_dataset sampled (first rows + exact count), PostgreSQL | "
        f"{e2e['sampled']['rows']:,} | {e2e['sampled']['seconds']:.1f} | - | | "
        f"{e2e['sampled']['rss_mb']:.0f} | - | {e2e['sampled']['load']} |",
        "",
        "The folder by format: "
        + "; ".join(
            f"{fmt}: {part['rows']:,} rows in {part['seconds']:.1f} s "
            f"({part['rows'] * 10 / part['seconds']:,.0f} cells/s)"
            for fmt, part in sorted(parts.items())
        )
        + ".",
        "",
        f"Columns detected on the PostgreSQL full scan: "
        f"{json.dumps(e2e['full']['detected'], ensure_ascii=False)}",
    ]


def report_lines(args, q: dict, tp: dict, e2e: dict) -> list[str]:
    return [
        "## Inventory scan",
        "",
        f"Command: `.venv/bin/python bench/inventory_bench.py --rows {args.rows} "
        f"--presidio-cells {args.presidio_cells} --hard-cells {args.hard_cells} "
        f"--csv-copies {args.csv_copies} --jsonl-rows {args.jsonl_rows}` "
        f"({date.today()}, {os.cpu_count()} cores, Python {platform.python_version()}). "
        "The load average is recorded with each number: on 2 cores a load above 2 means the "
        "numbers are below what an idle machine gives.",
        "",
        *_quality(q),
        "",
        *_throughput(q, tp),
        "",
        *_end_to_end(args, e2e),
        "",
        "Notes: Presidio ships no mainland-China recognizers and needs an NLP pipeline; it ran "
        'with `spacy.blank("zh")` (no NER), so names and addresses are regex/dictionary '
        "recognizers in both engines. Peak RSS is per process (fresh processes per run): "
        "compare the two table sizes to see that memory stays flat.",
        "",
    ]
