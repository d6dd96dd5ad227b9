"""The demo's successor, as a successor would be: its own age key pair, the private key
with it (``<out>/recipient/successor.key``, in ``age-keygen``'s format), and the demo plan
naming its public key, so that ``age -d -i <out>/recipient/successor.key FILE`` decrypts
what the demo delivers, as docs/backup.md says a recipient does.

Run: ``python -m retirement.demo_recipient PLAN OUT_DIR``; prints the plan to run.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyrage

_KEY = re.compile(r"^(\s*age_public_key:\s*)age1[0-9a-z]+\s*$", re.M)


def write_identity(path: Path) -> str:
    """A new age X25519 identity in ``path`` (mode 0600, as age-keygen writes it); its
    public key."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    path.parent.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return public


def successor_plan(plan: Path, out: Path) -> Path:
    """The successor's key pair under ``out/recipient/``, and ``plan`` copied to
    ``out/plans/`` with the recipient's ``age_public_key`` replaced by its public key."""
    public = write_identity(out / "recipient" / "successor.key")
    text, count = _KEY.subn(lambda m: f"{m.group(1)}{public}", plan.read_text(encoding="utf-8"))
    if count != 1:
        raise SystemExit(f"{plan}: expected one recipient's age_public_key, found {count}")
    target = out / "plans" / plan.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


if __name__ == "__main__":
    print(successor_plan(Path(sys.argv[1]), Path(sys.argv[2])))
