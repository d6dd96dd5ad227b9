"""The fenced code blocks of a Markdown document, in order: what the docs' tests run."""

from __future__ import annotations

import re

FENCE = re.compile(r"^```([A-Za-z]*)\n(.*?)^```$", flags=re.S | re.M)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of ``text`` (language "" when none is named)."""
    return [(m[1], m[2]) for m in FENCE.finditer(text)]
