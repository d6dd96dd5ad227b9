"""One way to put a file at a destination: upload, verify, rename (restic's backend: a small
store interface, the protocol written once above it).

A ``Store`` opens an ``Upload`` under a temporary name: a ``.<name>.partial`` file in a
folder or on an SFTP server, an unfinished multipart upload on S3. ``deliver_verified``
drives it the same way for all of them:

1. **Resume.** The upload says how many leading bytes an earlier attempt left that are ours
   (a partial file's prefix whose SHA-256 equals ours; S3 parts whose size and MD5 equal
   ours); anything else is started over.
2. **Send, hashing.** Every byte of the file is hashed as it is read, the kept prefix too,
   and what was not kept is written.
3. **Verify.** The bytes read must have the size and SHA-256 the manifest promises, and the
   store must hold exactly that many bytes; otherwise the upload is discarded and
   IntegrityError raised: nothing is renamed into place.
4. **Rename.** Only then is the upload published under its name, atomically (rename,
   CompleteMultipartUpload, PutObject).

The destination then verifies the published object by its own means (``sha256sum`` on the
server, reading back, HeadObject) before it writes a receipt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from retirement.errors import IntegrityError
from retirement.formats.digests import CHUNK, feed

if TYPE_CHECKING:
    from collections.abc import Callable


class Upload(Protocol):
    """One upload to a store, under a temporary name until it is published."""

    def keep(self, source: IO[bytes]) -> int:
        """How many leading bytes of what an earlier attempt left can stay (reading
        ``source`` from its start as far as needed to check them); 0 to start over."""
        ...

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` after what was kept and written so far."""
        ...

    def finish(self) -> tuple[int, int]:
        """Make everything written durable; (bytes the store holds for this upload, of
        them bytes an earlier attempt had left)."""
        ...

    def publish(self) -> str | None:
        """Put the upload in place under its name, atomically; the version made, where the
        store keeps versions."""
        ...

    def discard(self) -> None:
        """Remove what this upload left (nothing is published)."""
        ...


class Store(Protocol):
    """Somewhere files are put by name."""

    def upload(self, name: str, size: int) -> Upload:
        """The upload of ``size`` bytes to ``name``: an unfinished one resumed, or a new one."""
        ...


@dataclass(frozen=True)
class Sent:
    """What ``deliver_verified`` put in place."""

    size: int
    resumed_from: int  # bytes an earlier attempt had already delivered
    version_id: str | None = None


def deliver_verified(
    store: Store,
    name: str,
    source_stream: IO[bytes],
    expected_sha256: str,
    *,
    size: int,
    on_bytes: Callable[[int], None] | None = None,
) -> Sent:
    """Upload ``source_stream`` (seekable, read from its start) to ``name`` in ``store``,
    resuming what an earlier attempt left; rename it into place only if its bytes had
    ``size`` and ``expected_sha256`` and the store holds all of them (else IntegrityError,
    and the upload is discarded)."""
    upload = store.upload(name, size)
    kept = upload.keep(source_stream)
    source_stream.seek(0)
    sha = hashlib.sha256()
    read = feed(source_stream, sha, kept)
    while chunk := source_stream.read(CHUNK):
        sha.update(chunk)
        upload.write(chunk)
        read += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    held, resumed = upload.finish()
    digest = sha.hexdigest()
    if (read, digest) != (size, expected_sha256) or held != size:
        upload.discard()
        raise IntegrityError(
            f"{name}: {read} bytes with sha256 {digest} were sent and the destination holds "
            f"{held}; the manifest says {size} bytes, {expected_sha256}: nothing was put in "
            "place (the file to send changed since its manifest, or the upload was cut)"
        )
    return Sent(held, resumed, upload.publish())
