"""age encryption of a backup stream and the decrypting reader (zstd inside, age outside).

A recipient decrypts with ``age -d -i KEY FILE | zstd -d``; the library does the same in
process with pyrage and zstandard, streaming in fixed chunks.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import IO, TYPE_CHECKING, Any

import pyrage
import zstandard

from retirement.errors import IntegrityError
from retirement.formats.digests import CHUNK

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class HashingWriter:
    """Write-through to ``out`` counting and hashing the bytes (also the notices' CSV)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def writable(self) -> bool:
        return True


def encrypt_to(read_fd: int, target: Path, recipients: list[Any]) -> HashingWriter:
    """age-encrypt the pipe into ``target`` (fsynced); return the hashing writer."""
    with os.fdopen(read_fd, "rb", buffering=CHUNK) as pipe, target.open("wb") as out:
        hashed = HashingWriter(out)
        pyrage.encrypt_io(pipe, hashed, recipients)
        out.flush()
        os.fsync(out.fileno())
    return hashed


def decrypted_chunks(cipher: Path, identities: list[Any]) -> Iterator[bytes]:
    """Plaintext (still zstd-compressed) chunks of an age file, decrypted in a thread."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def decrypt() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=CHUNK) as sink, cipher.open("rb") as src:
                pyrage.decrypt_io(src, sink, identities)
        except BaseException as exc:  # re-raised in the reading thread
            failure.append(exc)

    worker = threading.Thread(target=decrypt, name=f"decrypt-{cipher.name}", daemon=True)
    worker.start()
    with os.fdopen(read_fd, "rb", buffering=CHUNK) as pipe:
        dctx = zstandard.ZstdDecompressor()
        try:
            with dctx.stream_reader(pipe, read_across_frames=True) as plain:
                while chunk := plain.read(CHUNK):
                    yield chunk
        except zstandard.ZstdError as exc:
            worker.join()
            if failure:
                break_error = failure[0]
                raise IntegrityError(_decrypt_message(cipher, break_error)) from break_error
            raise IntegrityError(f"{cipher}: the decrypted data is not valid zstd: {exc}") from exc
    worker.join()
    if failure:
        raise IntegrityError(_decrypt_message(cipher, failure[0])) from failure[0]


def _decrypt_message(cipher: Path, exc: BaseException) -> str:
    return (
        f"{cipher}: cannot be decrypted ({exc.__class__.__name__}: {exc}): a wrong key, "
        "or the file was altered or truncated"
    )
