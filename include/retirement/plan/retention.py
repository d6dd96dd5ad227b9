"""When a retained archive may be destroyed: the retention end date from the plan's rule.

Accounting archives count from the day after the fiscal year ends (会计档案管理办法 2016;
China's fiscal year is the calendar year), so records of the closing year kept 30 years
from 1 January of the next year. ``starts: retirement_date`` counts from the retirement.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retirement.plan.model import Retention


def retention_start(retention: Retention, retired_on: date) -> date:
    if retention.starts == "fiscal_year_end":
        return date(retired_on.year + 1, 1, 1)
    return retired_on


def retain_until(retention: Retention | None, retired_on: date) -> date | None:
    """The first day the archive may be destroyed; None when kept permanently (or no rule)."""
    if retention is None or retention.permanent or retention.years is None:
        return None
    start = retention_start(retention, retired_on)
    try:
        return start.replace(year=start.year + retention.years)
    except ValueError:  # 29 February into a common year
        return start.replace(year=start.year + retention.years, day=28)


def under_retention(extra: dict[str, Any], today: date) -> dict[str, Any] | None:
    """The retention terms of a manifest (its ``extra``) while they still hold, else None.

    Such an archive may only be stored and protected (PIPL Art. 47): restoring it is
    restricted use, allowed with a stated reason that goes into the ledger.
    """
    terms: dict[str, Any] | None = (
        extra.get("retention") if extra.get("action") == "retain" else None
    )
    if not terms:
        return None
    until = terms.get("retain_until")
    if until == "permanent" or (until and date.fromisoformat(until) > today):
        return terms
    return None
