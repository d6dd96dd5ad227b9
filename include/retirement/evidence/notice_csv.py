"""The customer notices' mail-merge CSV: rendered row by row into age, never whole in
memory and never on disk in plaintext."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from retirement.evidence.notices import Notice


class CsvStream(io.RawIOBase):
    """The mail-merge CSV as a readable stream, rendered row by row (never whole in memory,
    never on disk in plaintext); counts the notices it has given out."""

    def __init__(self, notices: Iterable[Notice]) -> None:
        self._rows = iter(notices)
        self._pending = self._line(["email", "name", "masked_id", "subject", "body_zh", "body_en"])
        self.count = 0

    @staticmethod
    def _line(fields: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out).writerow(fields)
        return out.getvalue().encode("utf-8")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            n = next(self._rows, None)
            if n is None:
                break
            self.count += 1
            self._pending += self._line(
                [n.email, n.name or "", n.masked_id or "", n.subject, n.body_zh, n.body_en]
            )
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def write_csv(notices: Iterable[Notice], path: Path, recipients: list[str]) -> tuple[str, int]:
    """The mail-merge CSV, age-encrypted to ``recipients`` as it is rendered; returns its
    ciphertext sha256 and the number of notices. Written under a temporary name first."""
    import pyrage

    from retirement.crypto.age import HashingWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    stream = CsvStream(notices)
    try:
        with partial.open("wb") as f:
            hashed = HashingWriter(f)
            pyrage.encrypt_io(
                stream, hashed, [pyrage.x25519.Recipient.from_str(r) for r in recipients]
            )
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return hashed.sha.hexdigest(), stream.count
