"""Where the plans live: ``RETIREMENT_PLANS_DIR``, else ``include/plans`` of this project."""

from __future__ import annotations

import os
from pathlib import Path


def plans_dir() -> Path:
    configured = os.environ.get("RETIREMENT_PLANS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "include" / "plans"
