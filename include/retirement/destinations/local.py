"""A local (or mounted) folder as a destination: the embedded demo's successor and archive.

Same protocol as the remote ones: copy to ``.<name>.partial`` (resumed after its prefix is
checked), fsync, rename atomically, read back and hash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from retirement.destinations.base import (
    Delivery,
    Destination,
    Receipt,
    expect,
    replaced_note,
    utc_now,
)
from retirement.errors import IntegrityError, TransferError
from retirement.formats.digests import CHUNK, hash_prefix

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class LocalDestination(Destination):
    kind = "local"

    def __init__(self, name: str, root: Path) -> None:
        super().__init__(name)
        self.root = root

    def _paths(self, item: Delivery) -> tuple[Path, Path]:
        final = self.root / item.name
        return final, final.with_name(f".{final.name}.partial")

    def deliver(self, item: Delivery, *, on_bytes: Callable[[int], None] | None = None) -> Receipt:
        final, partial = self._paths(item)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            replaced = False
            if final.exists():
                try:
                    return self.verify(item)  # delivered by an earlier attempt
                except IntegrityError:
                    replaced = True  # altered since: sent again, the altered copy replaced
            offset = partial.stat().st_size if partial.exists() else 0
            if offset > item.size or (
                offset and hash_prefix(partial, offset) != hash_prefix(item.path, offset)
            ):
                offset = 0  # what is there is not a prefix of ours: start again
            with item.path.open("rb") as src, partial.open("r+b" if offset else "wb") as out:
                src.seek(offset)
                out.seek(offset)
                out.truncate()
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except OSError as exc:
            raise TransferError(f"{self.name}: cannot write {final}: {exc}") from exc
        receipt = self.verify(item)
        return replaced_note(Receipt(**{**receipt.as_dict(), "resumed_from": offset}), replaced)

    def delete(self, name: str) -> int:
        path = self.root / name
        if not path.exists():
            return 0
        path.unlink()
        return 1

    def verify(self, item: Delivery, receipt: dict[str, Any] | None = None) -> Receipt:
        final, _ = self._paths(item)
        if not final.exists():
            raise IntegrityError(f"{self.name}: {final} is missing")
        size = final.stat().st_size
        expect(item, str(final), size, hash_prefix(final, size))
        return Receipt(
            destination=self.name,
            kind=self.kind,
            location=final.resolve().as_uri(),
            name=item.name,
            size=size,
            sha256=item.sha256,
            verified_at=utc_now(),
            method="read back and hashed (sha256)",
        )
