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


def _end_to_end(args, e2e: dict) -> list[str]:
    full, small, sampled = e2e["full"], e2e["small"], e2e["sampled"]
    cells = args.rows * 10
    small_cells = small["rows"] * 10
    return [
        f"End to end on PostgreSQL (`customers`, {args.rows:,} rows x 10 columns = {cells:,} "
        f"cells; loaded with COPY in {e2e['load_s']:.0f} s). A full scan reads the table with "
        "COPY ... (FORMAT csv) into Arrow in a reader thread while the engine runs:",
        "",
        "| run | rows | seconds | cells/s | peak RSS MB | load at end | scan / pg_dump |",
        "|---|---:|---:|---:|---:|---|---:|",
        f"| scan_dataset full | {full['rows']:,} | {full['seconds']:.1f} | "
        f"{cells / full['seconds']:,.0f} | {full['rss_mb']:.0f} | {full['load']} | "
        f"{full['seconds'] / e2e['dump_s']:.1f}x |",
        f"| `pg_dump -t customers > /dev/null` | {args.rows:,} | {e2e['dump_s']:.1f} | "
        f"{cells / e2e['dump_s']:,.0f} | - | {e2e['dump_load']} | |",
        f"| scan_dataset full | {small['rows']:,} | {small['seconds']:.1f} | "
        f"{small_cells / small['seconds']:,.0f} | {small['rss_mb']:.0f} | {small['load']} | "
        f"{small['seconds'] / e2e['small_dump_s']:.1f}x |",
        f"| `pg_dump -t customers > /dev/null` | {small['rows']:,} | "
        f"{e2e['small_dump_s']:.1f} | {small_cells / e2e['small_dump_s']:,.0f} | - | "
        f"{e2e['small_dump_load']} | |",
        f"| scan_dataset sampled (1,000 rows + exact count) | {sampled['rows']:,} | "
        f"{sampled['seconds']:.1f} | - | {sampled['rss_mb']:.0f} | {sampled['load']} | |",
        "",
        f"Columns detected on the full scan: {json.dumps(full['detected'], ensure_ascii=False)}",
    ]


def report_lines(args, q: dict, tp: dict, e2e: dict) -> list[str]:
    return [
        "## Inventory scan",
        "",
        f"Command: `.venv/bin/python bench/inventory_bench.py --rows {args.rows} "
        f"--presidio-cells {args.presidio_cells} --hard-cells {args.hard_cells}` "
        f"({date.today()}, {os.cpu_count()} cores, Python {platform.python_version()}). "
        "The machine was shared with other work during the run: the load average is recorded "
        "with each number, and on 2 cores a load above 2 means the numbers are below what an "
        "idle machine gives.",
        "",
        *_quality(q),
        "",
        *_throughput(q, tp),
        "",
        *_end_to_end(args, e2e),
        "",
        "Notes: Presidio ships no mainland-China recognizers and needs an NLP pipeline; it ran "
        'with `spacy.blank("zh")` (no NER), so names and addresses are regex/dictionary '
        "recognizers in both engines. Peak RSS is the scanning process's own (fresh process "
        "per run): compare the two table sizes to see that memory stays flat.",
        "",
    ]
