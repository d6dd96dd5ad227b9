"""SHA-256 of files and file descriptors, read in fixed chunks (memory stays flat)."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def hash_prefix(path: Path, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of a local file."""
    h, left = hashlib.sha256(), length
    with path.open("rb") as f:
        while left and (chunk := f.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def hash_fd(fd: int) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, CHUNK):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()
