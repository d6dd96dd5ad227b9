"""The proof checked again at the moment of use, just before anything is deleted: the backup
as it lies now is the one the chain recorded (signed manifest, age file size and SHA-256),
and each delivered copy is still there as received."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from retirement.errors import DeletionRefused

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.deletion.proof import Proof
    from retirement.destinations.base import Destination
    from retirement.model.manifest import Manifest


def recheck_backup(proof: Proof, public_key: Ed25519PublicKey) -> tuple[Manifest, Path]:
    """The backup as it lies now: the manifest is the one the chain recorded and its
    signature verifies, the age file is there with the manifest's size and SHA-256."""
    from pathlib import Path

    from retirement.crypto.signing import read_verified
    from retirement.errors import IntegrityError
    from retirement.formats.digests import file_sha256

    path = Path(proof.manifest)
    fix = (
        "nothing was deleted. Clear backup for it (a new version is made) and everything "
        "after it: gate_backup, transfer, gate_transfer, deletion_request, the approval"
    )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DeletionRefused(
            f"{proof.dataset}: its manifest {path} is gone ({exc.strerror}); {fix}"
        ) from exc
    if hashlib.sha256(raw).hexdigest() != proof.manifest_sha256:
        raise DeletionRefused(
            f"{proof.dataset}: {path.name} is not the manifest the ledger recorded; {fix}"
        )
    try:
        manifest = read_verified(path, public_key)
    except IntegrityError as exc:
        raise DeletionRefused(f"{proof.dataset}: {exc}; {fix}") from exc
    cipher = path.parent / manifest.ciphertext_file
    try:
        size, sha = file_sha256(cipher)
    except OSError as exc:
        raise DeletionRefused(
            f"{proof.dataset}: the backup {cipher} is gone since gate_backup verified it; {fix}"
        ) from exc
    if (size, sha) != (
        manifest.ciphertext_size,
        proof.ciphertext_sha256,
    ) or sha != manifest.ciphertext_sha256:
        raise DeletionRefused(
            f"{proof.dataset}: the backup {cipher.name} was altered since gate_backup verified it "
            f"({size} bytes, sha256 {sha[:12]}… now; the manifest says "
            f"{manifest.ciphertext_size} bytes, {manifest.ciphertext_sha256[:12]}…); {fix}"
        )
    return manifest, cipher


def recheck_deliveries(
    proof: Proof,
    manifest: Manifest,
    cipher: Path,
    destination_for: Callable[[str], Destination] | None,
) -> None:
    """Every copy the disposition requires still verifies where it was delivered."""
    from retirement.destinations.base import Delivery
    from retirement.errors import IntegrityError, TransferError

    for name in proof.needed:
        receipt = proof.delivery(name)
        if destination_for is None:
            raise DeletionRefused(
                f"{proof.dataset}: its copy at {name} cannot be checked again (no destination "
                "given to the deletion); nothing was deleted"
            )
        item = Delivery(cipher, receipt.name, manifest.ciphertext_size, proof.ciphertext_sha256)
        try:
            destination_for(name).verify(item, {"version_id": receipt.version_id})
        except (IntegrityError, TransferError) as exc:
            raise DeletionRefused(
                f"{proof.dataset}: its delivered copy no longer verifies: {exc}. Nothing was "
                "deleted: clear transfer for it (re-sent), gate_transfer, then deletion_request "
                "and the approval"
            ) from exc
