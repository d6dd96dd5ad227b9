"""The interface every destination implements, and the receipt it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from retirement.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from retirement.destinations.store import Store


@dataclass(frozen=True)
class Delivery:
    """One backup file to deliver: its local path, its name at the destination and the
    digest the manifest promises."""

    path: Path
    name: str  # relative object name, e.g. "demo/crm.customers/0ab5….csv.zst.age"
    size: int
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    retain_until: date | None = None  # retained archives: locked until then where possible


@dataclass(frozen=True)
class Receipt:
    """Proof of one verified delivery; recorded in the ledger."""

    destination: str
    kind: str
    location: str  # a URL naming the exact object (and version)
    name: str
    size: int
    sha256: str
    verified_at: str
    method: str  # how the digest at the destination was established
    version_id: str | None = None
    resumed_from: int = 0  # bytes an earlier attempt had already delivered
    lock: dict[str, str] | None = None  # Object Lock mode and retain-until, where applied
    encryption: str | None = None  # server-side encryption the destination reported

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Destination(ABC):
    """A place backups are delivered to: a store (``destinations.store``) that the one
    upload-verify-rename routine fills, and its own way to verify what it holds."""

    kind: str

    def __init__(self, name: str) -> None:
        self.name = name

    def deliver(self, item: Delivery, *, on_bytes: Callable[[int], None] | None = None) -> Receipt:
        """Upload (or resume, or find already there) and verify; return the receipt. A copy
        already there that no longer verifies is replaced."""
        from retirement.destinations.store import deliver_verified

        replaced = False
        if self.published(item):
            try:
                return self.accepted(item, self.verify(item))  # delivered by an earlier attempt
            except IntegrityError:
                replaced = True  # altered since: sent again, the altered copy replaced
        try:
            source_file = item.path.open("rb")
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"{item.path} is gone from the vault: nothing was delivered; run backup and "
                "gate_backup again, then the transfer"
            ) from exc
        with source_file as source, self.store(item) as store:
            sent = deliver_verified(
                store, item.name, source, item.sha256, size=item.size, on_bytes=on_bytes
            )
        receipt = self.verify(item, {"version_id": sent.version_id} if sent.version_id else None)
        receipt = Receipt(**{**receipt.as_dict(), "resumed_from": sent.resumed_from})
        if replaced:
            method = f"{receipt.method}; replaced a copy at the destination that no longer verified"
            receipt = Receipt(**{**receipt.as_dict(), "method": method})
        return self.accepted(item, receipt)

    @abstractmethod
    def published(self, item: Delivery) -> bool:
        """Whether something is already in place under the item's name."""

    @abstractmethod
    def store(self, item: Delivery) -> AbstractContextManager[Store]:
        """The store ``item`` is uploaded to, its client's errors translated into
        TransferError while it is used."""

    def accepted(self, item: Delivery, receipt: Receipt) -> Receipt:
        """What a verified delivery still needs (S3: Object Lock); its final receipt."""
        return receipt

    @abstractmethod
    def verify(self, item: Delivery, receipt: dict[str, Any] | None = None) -> Receipt:
        """Check the published object against ``item`` again (``receipt``: an earlier one,
        whose version must still be the current one). Raises IntegrityError."""

    @abstractmethod
    def delete(self, name: str) -> int:
        """Remove a delivered object (every version where the store keeps versions); return
        how many were removed. Object Lock still in force makes this fail."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""

    def __enter__(self) -> Destination:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def expect(item: Delivery, where: str, size: int, sha256: str) -> None:
    """Raise IntegrityError naming the object unless size and digest are the manifest's."""
    if (size, sha256) != (item.size, item.sha256):
        raise IntegrityError(
            f"{where}: holds {size} bytes with sha256 {sha256}; the manifest says "
            f"{item.size} bytes, {item.sha256} (truncated or altered at the destination)"
        )
