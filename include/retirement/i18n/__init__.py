"""The words of what people read, in Chinese and English: one message catalogue per
language (``zh.json``, ``en.json`` beside this file, the same keys in each), never strings
scattered in templates.

Pages show the languages of a set side by side, in the set's order
(``<span lang="zh">删除证明</span> / <span lang="en">Certificate of deletion</span>``): one
document is the record, a value (a dataset, a digest, a date) appears once, and a Chinese and
an English reader read the same page, so the two can never disagree. A plan names its set in
``organization.languages`` (both by default); the Retirement page takes ``?lang=``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from collections.abc import Iterable

LANGUAGES = ("zh", "en")  # every catalogue there is; a plan's default set


@cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of ``language`` by key (KeyError for a language without a catalogue)."""
    if language not in LANGUAGES:
        raise KeyError(f"no message catalogue for language {language!r}")
    text = files("retirement.i18n").joinpath(f"{language}.json").read_text(encoding="utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def message(language: str, key: str, **values: Any) -> str:
    """One message in one language, its ``{name}`` places filled with ``values``."""
    return catalogue(language)[key].format(**values)


@dataclass(frozen=True)
class Labels:
    """``t(key, **values)``: the message in every language of the set, side by side, as
    HTML (the values escaped); a key missing from a catalogue raises KeyError.
    ``t.has(key)``: whether every catalogue of the set has ``key`` (for keys made from data,
    such as a run's status, that may have no message)."""

    languages: tuple[str, ...]

    def __call__(self, key: str, **values: Any) -> Markup:
        return Markup(" / ").join(
            Markup('<span lang="{}">{}</span>').format(lang, escape(message(lang, key, **values)))
            for lang in self.languages
        )

    def has(self, key: str) -> bool:
        return all(key in catalogue(lang) for lang in self.languages)


def labeller(languages: Iterable[str]) -> Labels:
    """The labels of a page in ``languages`` (at least one), in that order."""
    chosen = tuple(languages)
    if not chosen:
        raise ValueError("no language to show")
    return Labels(chosen)


def parse_languages(text: str | None) -> tuple[str, ...]:
    """A ``?lang=`` value ("zh", "en", "zh,en"; empty: both) as a language set; languages
    without a catalogue are left out, and nothing left means both."""
    wanted = [x.strip() for x in (text or "").split(",")]
    chosen = tuple(dict.fromkeys(x for x in wanted if x in LANGUAGES))
    return chosen or LANGUAGES
