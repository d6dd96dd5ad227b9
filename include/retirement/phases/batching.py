"""How a step over many datasets becomes Airflow's mapped tasks.

One task per dataset is what operators want to see and re-run, and it is what small plans
get. A plan with thousands of datasets would overrun ``[core] max_map_length`` (1024 by
default) and drown the scheduler in tasks that each spend longer starting than working, so
the step is split into at most ``mapping.max_tasks`` tasks, each over a contiguous batch.
Every batch item is idempotent, so a failed batch re-runs whole without harm.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from retirement.phases.context import RunContext
    from retirement.sources.base import Source

log = logging.getLogger(__name__)

T = TypeVar("T")


def batches(items: Sequence[T], max_tasks: int) -> list[list[T]]:
    """``items`` split into at most ``max_tasks`` contiguous batches of near-equal size;
    one item per batch when they fit."""
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be at least 1, not {max_tasks}")
    if len(items) <= max_tasks:
        return [[item] for item in items]
    size = math.ceil(len(items) / max_tasks)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def grouped_batches(groups: Sequence[Sequence[T]], max_tasks: int) -> list[list[T]]:
    """Like :func:`batches`, but a group (tables linked by foreign keys, in deletion order)
    is never split between tasks, so its order holds."""
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be at least 1, not {max_tasks}")
    if len(groups) <= max_tasks:
        return [list(g) for g in groups if g]
    size = math.ceil(sum(len(g) for g in groups) / max_tasks)
    out: list[list[T]] = [[]]
    for group in groups:
        if len(out[-1]) >= size:
            out.append([])
        out[-1].extend(group)
    return [b for b in out if b]


def label(batch: Sequence[str]) -> str:
    """A mapped task's name in the UI: its first item and how many more."""
    if not batch:
        return "(empty)"
    return batch[0] if len(batch) == 1 else f"{batch[0]} (+{len(batch) - 1} more)"


def over_datasets(
    ctx: RunContext,
    batch: list[str],
    work: Callable[[RunContext, str, Source], dict[str, Any]],
) -> list[dict[str, Any]]:
    """``work(ctx, dataset, source)`` for each dataset of a batch, each source opened once,
    all the batch's ledger writes in one ``Ledger.batch``; progress in the task's log."""
    from itertools import groupby

    from retirement.model.ids import DatasetId

    done: list[dict[str, Any]] = []
    with ctx.ledger.batch():
        for name, group in groupby(batch, key=lambda d: DatasetId.parse(d).source):
            with ctx.source(name) as source:
                for dataset in group:
                    if len(batch) > 1:
                        log.info("dataset %d of %d: %s", len(done) + 1, len(batch), dataset)
                    done.append(work(ctx, dataset, source))
    return done


def batched(ctx: RunContext, items: list[str]) -> list[list[str]]:
    """``items`` in at most the plan's ``mapping.max_tasks`` batches."""
    return batches(items, ctx.plan.mapping.max_tasks)
