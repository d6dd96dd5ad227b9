"""The one exception tree of the project.

::

    RetirementError                 retryable?
    ├── PlanError                   no   the plan file is wrong: file, line, field, expectation
    ├── LedgerError                 yes  the ledger cannot be read or written (busy, down)
    │   ├── ChainBroken             no   the audit chain does not verify (names the event)
    │   └── TableEdited             no   a datasets or artifacts row disagrees with the chain
    ├── SourceError                 yes  a source cannot be read (unreachable, missing, malformed)
    │   └── ScanWorkerFailed        yes  the inventory's scan worker died or answered garbage
    ├── KeyStoreError               no   a key is missing or cannot be decrypted
    │   └── KeyDestroyed            no   ... because it was crypto-erased
    ├── BackupError                 yes  a backup could not be made; nothing was kept
    ├── RestoreError                no   a backup cannot be restored into that target
    ├── GateFailed                  no   a quality gate found a problem; carries the result
    ├── IntegrityError              no   a digest, signature or ciphertext did not verify
    ├── TimestampError              yes  the time-stamping authority cannot be reached or refuses
    ├── TransferError               yes  SFTP / S3 failures, after retries
    │   ├── HostKeyMismatch         no   the server's host key is not the pinned one
    │   └── InsecureConnection      no   a connection would send credentials or data in the clear
    ├── DeletionRefused             no   the ledger lacks proof that the data is safe elsewhere
    ├── AttestationRefused          no   a residual copy cannot be attested (unknown, twice, no run)
    └── AccessDenied                no   the person may not see that plan's runs and evidence

``retryable`` says whether waiting and trying again can help (a busy database, a network
down): the Airflow glue fails a task at once, without its retries, for an error that is not
retryable. Foreign errors (paramiko, botocore, psycopg, pymysql, SQLAlchemy, GX, pydantic)
are translated at the edge with ``raise ... from exc``, one place per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retirement.gates.quality import GateResult


class RetirementError(Exception):
    """Base of every error this project raises on purpose."""

    retryable = False


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

    retryable = True


class ChainBroken(LedgerError):
    """The audit chain does not verify; ``seq`` names the first bad event."""

    retryable = False

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit chain broken at event {seq}: {reason}")


class TableEdited(LedgerError):
    """A row of the ledger's datasets or artifacts table disagrees with the chained event
    that wrote it: the table was edited by hand (the chain itself may still verify)."""

    retryable = False


class SourceError(RetirementError):
    """A source cannot be read: unreachable, a missing table or file, a malformed file."""

    retryable = True


class ScanWorkerFailed(SourceError):
    """The inventory's second scan process (:mod:`retirement.inventory.worker`) died, stopped
    reading, or answered something that is not a whole result: the dataset was not scanned
    (no partial result is reported). Says what happened and what the process wrote last."""


class ObjectChanged(SourceError):
    """A file or object changed while a backup read it (``sources.pinned``): the bytes read
    were not one and the same content, so nothing was kept; re-running the backup helps."""


class KeyStoreError(RetirementError):
    """A key is missing, or cannot be decrypted with the master key."""


class KeyDestroyed(KeyStoreError):
    """The archive identity was destroyed (crypto-erased): nothing encrypted to it can be
    read, and no new archive can be made for it."""


class BackupError(RetirementError):
    """A backup could not be made; nothing was recorded as a backup."""

    retryable = True


class RestoreError(RetirementError):
    """The backup cannot be restored into that database or folder."""


class GateFailed(RetirementError):
    """A data-quality gate found a problem; ``result`` carries the gate's findings."""

    def __init__(
        self, gate: str, message: str, result: GateResult | dict[str, object] | None = None
    ) -> None:
        self.gate = gate
        self.result = result
        super().__init__(f"gate {gate} failed: {message}")


class IntegrityError(RetirementError):
    """A digest, signature or ciphertext did not verify."""


class TimestampError(RetirementError):
    """The plan's time-stamping authority (RFC 3161) cannot be reached, or did not grant a
    time-stamp for the digest asked; names the connection."""

    retryable = True


class TransferError(RetirementError):
    """A delivery over SFTP or S3 failed after its retries."""

    retryable = True


class HostKeyMismatch(TransferError):
    """The server's host key is not the pinned one: possibly a man in the middle. No retry
    makes it right; a person must look."""

    retryable = False


class InsecureConnection(TransferError):
    """A connection is configured to send credentials or data in the clear (SMTP without
    STARTTLS or implicit TLS): refused, whatever the retries."""

    retryable = False


class DeletionRefused(RetirementError):
    """The ledger lacks proof that the data is safe elsewhere; nothing was deleted."""


class PreviewOnly(RetirementError):
    """The run is a preview (``dry_run``): it only inventories and reports; backing up,
    delivering, approving, deleting and sealing are refused in it."""


class AttestationRefused(RetirementError):
    """A residual copy cannot be attested: the plan does not list it, the run is not in the
    ledger, or it was attested already."""


class AccessDenied(RetirementError):
    """The person asking may not see the plan this run or evidence belongs to (Airflow's
    access rules for the plan's DAG say so). The message never names the plan."""
