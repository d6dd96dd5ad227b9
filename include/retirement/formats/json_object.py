"""A JSON object read from text, or SourceError saying what the text was meant to be."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from retirement.errors import SourceError

if TYPE_CHECKING:
    from collections.abc import Callable


def json_object(text: str, *, not_json: Callable[[str], str], not_object: str) -> dict[str, Any]:
    """``text`` as a JSON object; SourceError with ``not_json(the parser's message)`` when it
    is not JSON, with ``not_object`` when it is JSON but not an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(not_json(exc.msg)) from exc
    if not isinstance(value, dict):
        raise SourceError(not_object)
    return value
