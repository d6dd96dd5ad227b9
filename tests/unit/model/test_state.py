"""The state machines of a dataset and a run: one place says what may follow what."""

from __future__ import annotations

import pytest

from retirement.model.state import DatasetState, RunState

D = DatasetState


@pytest.mark.parametrize(
    ("now", "new", "allowed"),
    [
        pytest.param(D.INVENTORIED, D.BACKED_UP, True, id="inventoried-backed_up"),
        pytest.param(D.INVENTORIED, D.BACKUP_VERIFIED, False, id="verified-without-backup"),
        pytest.param(D.INVENTORIED, D.DELETING, False, id="delete-without-backup"),
        pytest.param(D.BACKED_UP, D.DELETING, False, id="delete-unverified-backup"),
        pytest.param(D.BACKED_UP, D.DELIVERED, False, id="deliver-unverified-backup"),
        pytest.param(D.BACKUP_VERIFIED, D.DELETING, True, id="destroy-has-no-delivery"),
        pytest.param(D.DELIVERED, D.BACKED_UP, True, id="changed-source-new-version"),
        pytest.param(D.DELIVERED, D.INVENTORIED, True, id="re-inventory"),
        pytest.param(D.DELETING, D.INVENTORIED, False, id="re-inventory-after-deletion-began"),
        pytest.param(D.DELETING, D.BACKED_UP, False, id="new-backup-after-deletion-began"),
        pytest.param(D.DELETING, D.DELETING, True, id="deleting-records-its-result"),
        pytest.param(D.DELETING, D.DELETED, True, id="deleting-deleted"),
        pytest.param(D.DELETED, D.DELETING, False, id="deleted-is-final"),
        pytest.param(D.DELETED, D.INVENTORIED, False, id="deleted-never-re-inventoried"),
    ],
)
def test_dataset_transitions(now: DatasetState, new: DatasetState, allowed: bool) -> None:
    assert now.may_become(new) is allowed


def test_no_state_before_deletion_can_be_reached_once_deletion_began() -> None:
    for begun in (D.DELETING, D.DELETED):
        assert begun.deletion_begun
        assert not any(begun.may_become(s) for s in D if not s.deletion_begun)
    assert not any(s.deletion_begun for s in (D.INVENTORIED, D.BACKED_UP, D.DELIVERED))


def test_deletion_is_reached_only_from_a_verified_backup() -> None:
    before = {s for s in D if s.may_become(D.DELETING) and not s.deletion_begun}
    assert before == {D.BACKUP_VERIFIED, D.DELIVERED}
    assert all(s.backup_verified for s in before)


@pytest.mark.parametrize("state", list(D))
def test_event_kind_names_the_state(state: DatasetState) -> None:
    assert DatasetState.of_event(state.event_kind) is state


@pytest.mark.parametrize("kind", ["dataset_", "dataset_failed", "artifact_backup", "run_sealed"])
def test_other_event_kinds_are_no_dataset_state(kind: str) -> None:
    assert DatasetState.of_event(kind) is None


def test_the_page_stages_only_move_forward_along_the_happy_path() -> None:
    path = [D.INVENTORIED, D.BACKED_UP, D.BACKUP_VERIFIED, D.DELIVERED, D.DELETING, D.DELETED]
    passed = [s.stages_passed for s in path]
    assert passed == sorted(passed)
    assert all(a.may_become(b) for a, b in zip(path, path[1:], strict=False))


def test_a_sealed_run_can_only_fail_and_a_failed_run_returns_anywhere() -> None:
    assert {s for s in RunState if RunState.SEALED.may_become(s)} == {
        RunState.SEALED,
        RunState.FAILED,
    }
    assert all(RunState.FAILED.may_become(s) for s in RunState)
    assert not RunState.AWAITING_APPROVAL.may_become(RunState.SEALED)
    assert RunState.REJECTED.label == "rejected"
    assert RunState.AWAITING_APPROVAL.label == "awaiting approval"
