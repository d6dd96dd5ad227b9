"""The one exception tree of the project.

::

    RetirementError
    ├── PlanError              the plan file is wrong: file, line, field, what is expected
    ├── LedgerError            the ledger cannot be read or written
    │   ├── ChainBroken        the audit chain does not verify (names the event)
    │   └── TableEdited        a datasets or artifacts row disagrees with the chain
    ├── SourceError            a source cannot be read (unreachable, missing, malformed)
    ├── GateFailed             a quality gate found a problem; carries the result
    ├── IntegrityError         a digest, signature or ciphertext did not verify
    ├── TransferError          SFTP / S3 failures, after retries
    └── DeletionRefused        the ledger lacks proof that the data is safe elsewhere

Foreign errors (paramiko, botocore, psycopg, GX, pydantic) are translated at the edge with
``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class RetirementError(Exception):
    """Base of every error this project raises on purpose."""


@dataclass(frozen=True)
class PlanIssue:
    """One thing wrong in a plan file, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str
    value: object = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.field}: {self.message}{shown}"


class PlanError(RetirementError):
    """The plan file is wrong. ``issues`` lists every problem found, each located."""

    def __init__(self, issues: list[PlanIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in plan"
        super().__init__(head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues))


class LedgerError(RetirementError):
    """The ledger cannot be opened, read or written."""


class ChainBroken(LedgerError):
    """The audit chain does not verify; ``seq`` names the first bad event."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit chain broken at event {seq}: {reason}")


class TableEdited(LedgerError):
    """A row of the ledger's datasets or artifacts table disagrees with the chained event
    that wrote it: the table was edited by hand (the chain itself may still verify)."""


class SourceError(RetirementError):
    """A source cannot be read: unreachable, a missing table or file, a malformed file."""


class GateFailed(RetirementError):
    """A data-quality gate found a problem; ``result`` carries the gate's findings."""

    def __init__(self, gate: str, message: str, result: object = None) -> None:
        self.gate = gate
        self.result = result
        super().__init__(f"gate {gate} failed: {message}")


class IntegrityError(RetirementError):
    """A digest, signature or ciphertext did not verify."""


class TransferError(RetirementError):
    """A delivery over SFTP or S3 failed after its retries."""


class DeletionRefused(RetirementError):
    """The ledger lacks proof that the data is safe elsewhere; nothing was deleted."""
