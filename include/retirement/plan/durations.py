"""Durations in a plan, written as a whole number and a unit: ``90s``, ``45m``, ``6h``,
``3d``. Read by the model (validation) and by the cheap header (the DAG's timeouts) alike."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PATTERN = _DURATION.pattern
MAX_SECONDS = 366 * 86400  # a year: longer is a mistake, not a timeout


def seconds(text: object) -> int | None:
    """The seconds ``text`` stands for, or None if it is not a duration within a year."""
    if not isinstance(text, str):
        return None
    found = _DURATION.match(text.strip())
    if found is None:
        return None
    total = int(found[1]) * _SECONDS[found[2]]
    return total if total <= MAX_SECONDS else None
