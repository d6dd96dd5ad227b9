"""Sources of customer data, one module per kind, behind one small interface.

Every source lists its datasets, gives a dataset's schema and exact row count, streams its
rows in batches (memory stays flat) and samples a few. Identifiers from plans and databases
are quoted with the driver's own quoting, never pasted into SQL.
"""

from __future__ import annotations

from retirement.sources.base import Column, DatasetRef, Source

__all__ = ["Column", "DatasetRef", "Source"]
