"""How an event becomes the bytes its hash covers: one encoding per ledger format, selected
by the event's sequence number (``ledger_meta`` records where encoding 3 starts).

- Encoding 2 (ledger formats 1 and 2): the hash is ``sha256(body)``, ``body`` Python's
  ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` of the
  event with the previous hash under the name ``prev``. Floats print as Python does
  (``1.0``), which RFC 8785 serializers do not reproduce.
- Encoding 3 (ledger format 3): the event is one **line** of RFC 8785 canonical JSON (keys
  sorted by UTF-16 code units, no whitespace, strings with only the escapes RFC 8785 makes,
  numbers as ECMAScript prints them: ``1.0`` is ``1``, ``0.5`` is ``0.5``, ``1e-7`` is
  ``1e-7``; NaN and infinities refused; integers exact), holding ``actor``, ``at``,
  ``dataset``, ``kind``, ``payload``, ``run_id`` and ``seq``, and
  ``hash = sha256(prev_hash_hex || sha256_hex(line))``: the 64 lowercase hex characters of
  the previous hash followed by those of the line's own SHA-256 (of its UTF-8 bytes, no
  newline). The line's digest alone links an event whose content is not shown (a
  dossier shows other runs' events only by it). A POSIX shell recomputes it::

      d=$(printf '%s' "$line" | sha256sum | cut -c1-64)
      h=$(printf '%s%s' "$h" "$d" | sha256sum | cut -c1-64)

A ledger created by this code is encoding 3 from its first event; an older ledger opened
for writing records the next sequence number as ``chain_encoding_3_from`` and goes on in
encoding 3 after its last legacy event (both are in docs/audit.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

LEGACY = 2  # encoding of ledger formats 1 and 2
JCS = 3  # RFC 8785 line, hash over prev || line
META_KEY = "chain_encoding_3_from"


def canonical(value: Any) -> str:
    """RFC 8785 (JSON Canonicalization Scheme) text of ``value``."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def legacy_canonical(value: Any) -> str:
    """The canonical JSON of ledger formats 1 and 2 (Python's json.dumps, sorted keys)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        keys = {_key(k): v for k, v in value.items()}
        out.append("{")
        for i, k in enumerate(sorted(keys, key=lambda s: s.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _encode(keys[k], out)
        out.append("}")
    else:
        raise TypeError(f"not JSON: {type(value).__name__}")


def _key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"not a JSON object key: {key!r}")


def _string(text: str) -> str:
    """A JSON string with RFC 8785's escapes (the same as Python's with ensure_ascii off);
    lone surrogates cannot be UTF-8 and are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text: {text!r}") from exc
    return json.dumps(text, ensure_ascii=False)


def number(value: float) -> str:
    """An IEEE double as ECMAScript's Number.prototype.toString prints it (RFC 8785 3.2.2.3):
    the shortest digits that round-trip (Python's repr finds them), placed by ECMAScript's
    rules."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} has no JSON form (RFC 8785 refuses NaN and infinities)")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # value = 0.<digits> x 10^n
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exponent = ("+" if e >= 0 else "-") + str(abs(e))
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return sign + head + "e" + exponent


def event_line(
    *,
    seq: int,
    at: str,
    run_id: str | None,
    actor: str,
    kind: str,
    dataset: str | None,
    payload_text: str,
    prev_hash: str,
    encoding: int,
) -> str:
    """The exact text an event's hash covers (``payload_text``: the payload's canonical
    JSON of that encoding, as the ledger stores it)."""
    s = _string if encoding == JCS else _legacy_string

    def opt(v: str | None) -> str:
        return "null" if v is None else s(v)

    prev = "" if encoding == JCS else f'"prev":{s(prev_hash)},'
    return (
        f'{{"actor":{s(actor)},"at":{s(at)},"dataset":{opt(dataset)},"kind":{s(kind)},'
        f'"payload":{payload_text},{prev}"run_id":{opt(run_id)},"seq":{int(seq)}}}'
    )


def _legacy_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def line_digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def link(prev_hash: str, digest: str) -> str:
    """Encoding 3's hash of an event from the previous hash and its line's digest."""
    return hashlib.sha256((prev_hash + digest).encode("ascii")).hexdigest()


def line_hash(line: str, prev_hash: str, encoding: int) -> str:
    """The hash of an event from its line: ``sha256(prev || sha256(line))`` in encoding 3,
    the line's sha256 (which names the previous hash inside) before it."""
    return link(prev_hash, line_digest(line)) if encoding == JCS else line_digest(line)


def payload_text(payload: Any, encoding: int) -> str:
    return canonical(payload) if encoding == JCS else legacy_canonical(payload)


def encoding_of(seq: int, v3_from: int | None) -> int:
    """The encoding of event ``seq`` in a ledger whose encoding 3 starts at ``v3_from``
    (None: the ledger has no encoding 3 events)."""
    return JCS if v3_from is not None and seq >= v3_from else LEGACY
