"""A local (or mounted) folder as a destination: the embedded demo's successor and archive.

Same protocol as the remote ones (``destinations.store``): copy to ``.<name>.partial``
(resumed after its prefix is checked), fsync, rename atomically, read back and hash.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from retirement.destinations.base import Delivery, Destination, Receipt, expect, utc_now
from retirement.errors import IntegrityError, TransferError
from retirement.formats.digests import hash_prefix, stream_sha256

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def partial_of(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


class FolderUpload:
    """``.<name>.partial`` beside the file's place, renamed over it when published."""

    def __init__(self, final: Path, size: int) -> None:
        self.final, self.partial, self.size = final, partial_of(final), size
        self._kept = 0
        self._out: IO[bytes] | None = None

    def keep(self, source: IO[bytes]) -> int:
        have = self.partial.stat().st_size if self.partial.exists() else 0
        if (
            have
            and have <= self.size
            and hash_prefix(self.partial, have) == stream_sha256(source, have)
        ):
            self._kept = have
        return self._kept  # otherwise what is there is not a prefix of ours: start again

    def _opened(self) -> IO[bytes]:
        if self._out is None:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.partial.open("r+b" if self._kept else "wb")
            self._out.seek(self._kept)
            self._out.truncate()
        return self._out

    def write(self, chunk: bytes) -> None:
        self._opened().write(chunk)

    def finish(self) -> tuple[int, int]:
        out = self._opened()
        out.flush()
        os.fsync(out.fileno())
        out.close()
        return self.partial.stat().st_size, self._kept

    def publish(self) -> None:
        os.replace(self.partial, self.final)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
        self.partial.unlink(missing_ok=True)


class Folder:
    """A folder as a store (``destinations.store.Store``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def upload(self, name: str, size: int) -> FolderUpload:
        return FolderUpload(self.root / name, size)


class LocalDestination(Destination):
    kind = "local"

    def __init__(self, name: str, root: Path) -> None:
        super().__init__(name)
        self.root = root

    def _final(self, item: Delivery) -> Path:
        return self.root / item.name

    def published(self, item: Delivery) -> bool:
        return self._final(item).exists()

    @contextmanager
    def store(self, item: Delivery) -> Iterator[Folder]:
        try:
            yield Folder(self.root)
        except OSError as exc:
            raise TransferError(f"{self.name}: cannot write {self._final(item)}: {exc}") from exc

    def delete(self, name: str) -> int:
        path = self.root / name
        if not path.exists():
            return 0
        path.unlink()
        return 1

    def verify(self, item: Delivery, receipt: dict[str, Any] | None = None) -> Receipt:
        final = self._final(item)
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
