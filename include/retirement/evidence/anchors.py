"""The audit of a dossier's RFC 3161 time-stamp tokens (phases.anchor, docs/audit.md).

``timestamps/<gate>.<seq>.tsr`` time-stamps the chain head as it was after event ``seq``:
its ``timestamp_anchored`` event records the digest and the digests of the token's files,
and the token's message imprint must be the hash the chain recomputed from ledger.jsonl
gives at ``seq`` (a chain rewritten and re-signed afterwards gives another).
``timestamps/seal.tsr`` time-stamps head.json's chain head, ``SHA256SUMS.tsr`` (beside
SHA256SUMS, not listed in it) the SHA-256 of SHA256SUMS. With the authority's CA
certificate every token is also verified by ``openssl ts -verify``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from retirement.crypto.tsp import read_reply, verify_token
from retirement.errors import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.evidence.chain_export import RunEvent

SEAL_TOKENS = ("timestamps/seal", "SHA256SUMS")  # without .tsq/.tsr


def audit_timestamps(
    folder: Path,
    head: dict[str, Any],
    events: list[RunEvent],
    hashes: dict[int, str],
    tsa_ca: Path | None,
) -> list[str]:
    """Every problem of the dossier's time-stamp tokens (empty: none, or all verify)."""
    problems: list[str] = []
    claimed: dict[str, str] = {}  # token (without suffix) -> the digest it must time-stamp
    for e in events:
        if e.kind != "timestamp_anchored" or "seq" not in e.payload:
            continue  # the seal's own tokens are recorded after the head
        p = e.payload
        base = f"timestamps/{str(p.get('token', '')).removesuffix('.tsr')}"
        problems += _recorded(folder, base, p)
        truth = hashes.get(int(p.get("seq", -1)))
        if p.get("digest") != truth:
            problems.append(
                f"{base}.tsr: the chain recorded that it time-stamps the head after event "
                f"{p.get('seq')} as {str(p.get('digest'))[:16]}…, the chain recomputed from "
                f"ledger.jsonl gives {str(truth)[:16]}… there (rewritten after it was "
                "time-stamped)"
            )
        claimed[base] = str(truth)
    if (folder / "timestamps/seal.tsr").is_file():
        claimed["timestamps/seal"] = str(head.get("chain_head"))
    if (folder / "SHA256SUMS.tsr").is_file():
        sums = hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()
        claimed["SHA256SUMS"] = sums
    problems += _unrecorded(folder, claimed)
    for base, digest in sorted(claimed.items()):
        problems += _token(folder, base, digest, tsa_ca)
    if claimed and tsa_ca is None:
        problems.append(
            f"the dossier holds {len(claimed)} RFC 3161 time-stamp tokens: give the "
            "time-stamping authority's CA certificate (--tsa-ca PEM) to verify them"
        )
    return problems


def _recorded(folder: Path, base: str, payload: dict[str, Any]) -> list[str]:
    """The token's files are the ones the chain recorded."""
    out = []
    for suffix, field in ((".tsr", "tsr_sha256"), (".tsq", "tsq_sha256")):
        path = folder / f"{base}{suffix}"
        if not path.is_file():
            out.append(f"{base}{suffix}: recorded in the chain but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != payload.get(field):
            out.append(f"{base}{suffix}: not the file the chain recorded (sha256 differs)")
    return out


def _unrecorded(folder: Path, claimed: dict[str, str]) -> list[str]:
    known = {f"{base}{s}" for base in claimed for s in (".tsq", ".tsr")}
    return [
        f"{path.relative_to(folder).as_posix()}: a time-stamp file the chain does not record"
        for path in sorted((folder / "timestamps").glob("*"))
        if path.relative_to(folder).as_posix() not in known
    ]


def _token(folder: Path, base: str, digest: str, tsa_ca: Path | None) -> list[str]:
    """The token's imprint is ``digest``; with the CA, ``openssl ts -verify`` accepts it
    for its request and for the digest."""
    reply, query = folder / f"{base}.tsr", folder / f"{base}.tsq"
    if not reply.is_file():
        return []  # reported as missing
    try:
        token = read_reply(reply.read_bytes(), where=f"{base}.tsr")
    except IntegrityError as exc:
        return [str(exc)]
    if token.imprint != digest:
        return [
            f"{base}.tsr: time-stamps {token.imprint[:16]}… at {token.gen_time}, not "
            f"{digest[:16]}… (what it stands for was changed after it was time-stamped)"
        ]
    if tsa_ca is None:
        return []
    out = []
    for problem in (
        verify_token(reply, tsa_ca, digest=digest),
        verify_token(reply, tsa_ca, query=query) if query.is_file() else f"{base}.tsq missing",
    ):
        if problem:
            out.append(f"{base}.tsr: openssl ts -verify with the authority's CA: {problem}")
    return out
