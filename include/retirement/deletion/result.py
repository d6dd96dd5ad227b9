"""What a deletion did, as its certificate reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DeletionResult:
    method: str  # NIST SP 800-88 category: clear / purge / cryptographic erase
    technique: str
    deleted: int  # rows (or objects / files) deleted by this run
    scoped_left: int  # rows of the scope still at the source afterwards
    remaining: int  # rows left in the dataset (added after the backup, out of scope)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
