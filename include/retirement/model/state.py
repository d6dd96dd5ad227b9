"""Where a dataset and a run stand: two enums that know their order and their transitions.

One place says which states may be deleted, which come after delivery, which a re-run of
the inventory must not step back and what the Retirement page shows; phases, deletion, the
ledger and the page ask these enums instead of keeping tuples of strings.

A dataset moves ``inventoried -> backed_up -> backup_verified -> delivered -> deleting ->
deleted`` (``delivered`` only where its disposition hands copies over). Before its deletion
begins it may go back: a re-inventory starts it again, a changed source makes a new backup
version (which must be verified and delivered again). Once its deletion has begun, nothing
steps it back.
"""

from __future__ import annotations

from enum import StrEnum


class DatasetState(StrEnum):
    """A dataset's state in a run; its ledger event is ``dataset_<value>``."""

    INVENTORIED = "inventoried"
    BACKED_UP = "backed_up"
    BACKUP_VERIFIED = "backup_verified"
    DELIVERED = "delivered"
    DELETING = "deleting"
    DELETED = "deleted"

    @property
    def event_kind(self) -> str:
        return f"dataset_{self.value}"

    @classmethod
    def of_event(cls, kind: str) -> DatasetState | None:
        """The state an event kind records (``dataset_deleted`` -> DELETED), or None."""
        value = kind.removeprefix("dataset_")
        return cls(value) if kind.startswith("dataset_") and value in _VALUES else None

    @property
    def deletion_begun(self) -> bool:
        """Its deletion has begun: its backup stands and no re-run steps it back."""
        return self in (DatasetState.DELETING, DatasetState.DELETED)

    @property
    def backup_verified(self) -> bool:
        """Its current backup was restore-verified (this state or a later one)."""
        return _ORDER[self] >= _ORDER[DatasetState.BACKUP_VERIFIED]

    def may_become(self, new: DatasetState) -> bool:
        """Whether a dataset in this state may be recorded in ``new`` (the same state again
        is allowed: a re-run records what it found)."""
        return new in _NEXT[self]

    @property
    def stages_passed(self) -> int:
        """How many of the page's stages (inventoried, backed up, delivered, deleted, sealed)
        this state has passed."""
        return _STAGES_PASSED[self]


_VALUES = frozenset(s.value for s in DatasetState)
_ORDER = {s: i for i, s in enumerate(DatasetState)}
_BEFORE_DELETION = (
    DatasetState.INVENTORIED,
    DatasetState.BACKED_UP,
    DatasetState.BACKUP_VERIFIED,
    DatasetState.DELIVERED,
)
_NEXT: dict[DatasetState, frozenset[DatasetState]] = {
    DatasetState.INVENTORIED: frozenset({DatasetState.INVENTORIED, DatasetState.BACKED_UP}),
    DatasetState.BACKED_UP: frozenset(
        {DatasetState.INVENTORIED, DatasetState.BACKED_UP, DatasetState.BACKUP_VERIFIED}
    ),
    # ``destroy`` dispositions deliver nothing: deletion starts from backup_verified.
    DatasetState.BACKUP_VERIFIED: frozenset({*_BEFORE_DELETION, DatasetState.DELETING}),
    DatasetState.DELIVERED: frozenset({*_BEFORE_DELETION, DatasetState.DELETING}),
    DatasetState.DELETING: frozenset({DatasetState.DELETING, DatasetState.DELETED}),
    DatasetState.DELETED: frozenset({DatasetState.DELETED}),
}
_STAGES_PASSED = {
    DatasetState.INVENTORIED: 1,
    DatasetState.BACKED_UP: 2,
    DatasetState.BACKUP_VERIFIED: 2,
    DatasetState.DELIVERED: 3,
    DatasetState.DELETING: 3,
    DatasetState.DELETED: 4,
}


class RunState(StrEnum):
    """Where a run stands; kept in the ledger's ``runs`` row, each change a ``run_<value>``
    event. ``failed`` is left for the state the run was in when a task that failed is run
    again and succeeds. A ``preview`` run (opened by ``preview_started``, not
    ``run_started``) only inventories and reports: it never becomes anything else, and no
    other run becomes a preview (the ledger also refuses a preview that failed to return to
    anything but ``preview``)."""

    PREVIEW = "preview"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    DELETING = "deleting"
    REJECTED = "rejected"
    FAILED = "failed"
    SEALED = "sealed"

    @property
    def label(self) -> str:
        """What the Retirement page shows."""
        return self.value.replace("_", " ")

    def may_become(self, new: RunState) -> bool:
        return new in _RUN_NEXT[self]


_REAL = frozenset(RunState) - {RunState.PREVIEW}
_RUN_NEXT: dict[RunState, frozenset[RunState]] = {
    # A preview is never approved, deleting or sealed: it may only fail (and be re-run).
    RunState.PREVIEW: frozenset({RunState.PREVIEW, RunState.FAILED}),
    # (a run begun before runs recorded their states may be anywhere: from running, all)
    RunState.RUNNING: _REAL,
    # A new request (a gate re-run and deletion_request cleared) asks again.
    RunState.AWAITING_APPROVAL: frozenset(
        {RunState.AWAITING_APPROVAL, RunState.DELETING, RunState.REJECTED, RunState.FAILED}
    ),
    RunState.DELETING: frozenset(
        {RunState.DELETING, RunState.AWAITING_APPROVAL, RunState.FAILED, RunState.SEALED}
    ),
    # The approval task cleared and answered again decides the same request anew.
    RunState.REJECTED: frozenset(
        {RunState.REJECTED, RunState.AWAITING_APPROVAL, RunState.DELETING, RunState.FAILED}
    ),
    # A re-run that succeeds returns to where it was (a preview only to preview: the ledger
    # checks which kind of run it is).
    RunState.FAILED: frozenset(RunState),
    RunState.SEALED: frozenset({RunState.SEALED, RunState.FAILED}),
}
