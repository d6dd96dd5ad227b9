"""SHA-256 of files and file descriptors, read in fixed chunks (memory stays flat)."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def feed(stream: Readable, digest: Any, length: int | None = None) -> int:
    """Feed the next ``length`` bytes of ``stream`` (all of it where None) to ``digest``
    (a hashlib object) in chunks; return how many there were."""
    left, done = length, 0
    while left is None or left > 0:
        chunk = stream.read(CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        done += len(chunk)
        if left is not None:
            left -= len(chunk)
    return done


def file_sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with path.open("rb") as f:
        size = feed(f, h)
    return size, h.hexdigest()


def hash_prefix(path: Path, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of a local file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        feed(f, h, length)
    return h.hexdigest()


def hash_fd(fd: int) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, CHUNK):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def stream_sha256(stream: Readable, length: int) -> str:
    """SHA-256 of the next ``length`` bytes of ``stream`` (fewer where it ends first)."""
    h = hashlib.sha256()
    feed(stream, h, length)
    return h.hexdigest()
