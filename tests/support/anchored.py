"""The demo plan with an ``evidence`` block (a time-stamping authority, witnesses), written
beside a copy of the assessments it names."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.demo import PLAN


def demo_plan_with(folder: Path, evidence_yaml: str) -> str:
    """A copy of the demo plan in ``folder`` with ``evidence_yaml`` (the block's YAML,
    starting with ``evidence:``) appended; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(PLAN).parent / "assessments", folder / "assessments", dirs_exist_ok=True)
    target = folder / "demo.yaml"
    target.write_text(Path(PLAN).read_text(encoding="utf-8") + "\n" + evidence_yaml, "utf-8")
    return str(target)
