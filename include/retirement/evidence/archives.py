"""``retirement audit --archives DIR...``: the encrypted archives (``*.age``) and delivered
copies under DIR against the dossier's signed manifests and receipts; with an age
identity, each archive it can open decrypted and its plaintext digest, size, rows and row
digest compared with the manifest (vault.verify)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from retirement.errors import IntegrityError
from retirement.formats.digests import file_sha256

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def audit_archives(
    folder: Path,
    dirs: list[Path],
    public_key: Ed25519PublicKey,
    identities: list[Any] | None = None,
) -> list[str]:
    """Every problem with the files under ``dirs`` (empty: each matches the dossier)."""
    receipts = _receipts(folder)
    problems: list[str] = []
    seen = 0
    for root in dirs:
        if not root.is_dir():
            problems.append(f"{root}: not a folder")
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            found = _check_file(folder, path, receipts, public_key, identities)
            seen += found is not None
            problems += found or []
    if not seen and not problems:
        problems.append(f"no archive or delivered copy under {', '.join(map(str, dirs))}")
    return problems


def _receipts(folder: Path) -> dict[str, list[str]]:
    """The sha256 of every delivered copy the dossier's receipts record, by file name."""
    by_name: dict[str, list[str]] = {}
    try:
        listed = json.loads((folder / "receipts.json").read_text())
    except (OSError, ValueError):
        return by_name
    for r in listed if isinstance(listed, list) else []:
        name = PurePosixPath(str(r.get("name") or r.get("location") or "")).name
        by_name.setdefault(name, []).append(str(r.get("sha256")))
    return by_name


def _check_file(
    folder: Path,
    path: Path,
    receipts: dict[str, list[str]],
    key: Ed25519PublicKey,
    identities: list[Any] | None,
) -> list[str] | None:
    """The problems with one file (None: not an archive or delivered copy)."""
    name = path.name
    digest = None
    problems = []
    if name.endswith(".age"):
        manifest = folder / "manifests" / f"{name}.manifest.json"
        if not manifest.is_file():
            return [f"{path}: no signed manifest of that name in the dossier"]
        size, digest = file_sha256(path)
        data = json.loads(manifest.read_bytes())
        if (size, digest) != (data.get("ciphertext_size"), data.get("ciphertext_sha256")):
            problems.append(f"{path}: size or sha256 differs from manifests/{manifest.name}")
        elif identities:
            problems += _decrypted(path, manifest, key, identities)
    elif name.endswith((".manifest.json", ".manifest.json.sig")):
        signed = folder / "manifests" / name
        if not signed.is_file():
            return [f"{path}: no manifest of that name in the dossier"]
        if path.read_bytes() != signed.read_bytes():
            problems.append(f"{path}: not the dossier's signed manifests/{name}")
    elif name not in receipts:
        return None
    if name in receipts:
        digest = digest or file_sha256(path)[1]
        if digest not in receipts[name]:
            problems.append(f"{path}: sha256 differs from its receipt in receipts.json")
    return problems


def _decrypted(
    path: Path, manifest: Path, key: Ed25519PublicKey, identities: list[Any]
) -> list[str]:
    """Decrypt beside the dossier's signed manifest and compare (vault.verify): plaintext
    sha256 and size, rows and row digest."""
    from retirement.vault.verify import verify_backup

    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        shutil.copyfile(manifest, here / manifest.name)
        shutil.copyfile(manifest.with_name(manifest.name + ".sig"), here / f"{manifest.name}.sig")
        (here / path.name).symlink_to(path.resolve())
        try:
            verify_backup(here / manifest.name, key, identities)
        except IntegrityError as exc:  # also: the identity cannot open it
            return [f"{path}: {exc}"]
    return []
