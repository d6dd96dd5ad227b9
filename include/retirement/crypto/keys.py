"""The key store: one age X25519 archive identity per (plan, disposition), and the signing key.

Identities are stored encrypted to a master age key (from an Airflow connection or a secrets
backend; in the demo a generated file), never in plaintext. Destroying an identity is the
crypto-erase of every archive encrypted to it: after it, nobody can decrypt them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from retirement.errors import IntegrityError, KeyDestroyed, KeyStoreError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ArchiveKey:
    plan: str
    disposition: str
    recipient: str  # age1...


class KeyStore:
    """Archive identities under ``root``, each encrypted to the master key."""

    def __init__(self, root: Path, master_identity: str) -> None:
        self.root = Path(root)
        try:
            self._master = pyrage.x25519.Identity.from_str(master_identity.strip())
        except Exception as exc:  # pyrage's IdentityError
            raise KeyStoreError(
                "the master key is not an age X25519 identity (AGE-SECRET-KEY-1...)"
            ) from exc
        self.master_recipient = str(self._master.to_public())

    @staticmethod
    def new_master_key(path: Path) -> str:
        """Create a master key file (demo use); return the identity string."""
        identity = pyrage.x25519.Identity.generate()
        secret = str(identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# public key: {identity.to_public()}\n{secret}\n")
        return secret

    @staticmethod
    def read_master_key(path: Path) -> str:
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
        if not lines:
            raise KeyStoreError(f"{path}: no age identity in the file")
        return lines[0]

    def _lookup(self, plan: str, disposition: str, *, if_destroyed: str) -> tuple[Path, Path, bool]:
        """(secret path, public path, whether the secret is there) of an archive identity.

        A destroyed identity leaves its public half behind: then this raises KeyDestroyed,
        its message ending in ``if_destroyed`` (what that means to the caller)."""
        for part in (plan, disposition):
            if not _NAME.match(part):
                raise KeyStoreError(f"not a plan or disposition name: {part!r}")
        folder = self.root / plan
        secret_path = folder / f"{disposition}.identity.age"
        public_path = folder / f"{disposition}.recipient"
        made = secret_path.exists()
        if not made and public_path.exists():
            raise KeyDestroyed(
                f"the archive identity of {plan}/{disposition} was destroyed{if_destroyed}"
            )
        return secret_path, public_path, made

    def destroyed(self, plan: str, disposition: str) -> bool:
        """Whether the archive identity of (plan, disposition) was crypto-erased."""
        try:
            self._lookup(plan, disposition, if_destroyed="")
        except KeyDestroyed:
            return True
        return False

    def archive_key(self, plan: str, disposition: str) -> ArchiveKey:
        """The archive key of (plan, disposition), created on first use.

        Safe when many tasks ask at once (found as a bug under a running Airflow: two
        parallel backups each made a key and one was overwritten, leaving backups nobody
        could decrypt): the identity is published with an atomic create-if-absent, and every
        caller then reads the one identity on disk.
        """
        secret_path, public_path, made = self._lookup(
            plan, disposition, if_destroyed=" (crypto-erased): no new archive can be made for it"
        )
        if not made:
            identity = pyrage.x25519.Identity.generate()
            secret_path.parent.mkdir(parents=True, exist_ok=True)
            sealed = pyrage.encrypt(str(identity).encode(), [self._master.to_public()])
            if _create_exclusive(secret_path, sealed):
                log.info("created archive identity for %s/%s", plan, disposition)
        recipient = str(self.identity(plan, disposition).to_public())
        if not _create_exclusive(public_path, f"{recipient}\n".encode()):
            published = public_path.read_text().strip()
            if published != recipient:
                raise IntegrityError(
                    f"{public_path} says {published}, but the archive identity's recipient "
                    f"is {recipient}: the key store was tampered with"
                )
        return ArchiveKey(plan, disposition, recipient)

    def identity(self, plan: str, disposition: str) -> pyrage.x25519.Identity:
        """The decrypted archive identity (for restore); fails once destroyed."""
        secret_path, _, made = self._lookup(
            plan,
            disposition,
            if_destroyed=" (crypto-erased): the archives encrypted to it cannot be decrypted",
        )
        if not made:
            raise KeyStoreError(f"no archive identity for {plan}/{disposition} (never made)")
        try:
            text = pyrage.decrypt(secret_path.read_bytes(), [self._master]).decode()
        except pyrage.DecryptError as exc:
            raise IntegrityError(
                f"{secret_path}: cannot be decrypted with this master key"
            ) from exc
        return pyrage.x25519.Identity.from_str(text)

    def destroy(self, plan: str, disposition: str) -> Path:
        """Crypto-erase: overwrite and remove the encrypted identity. Irreversible."""
        secret_path, _, made = self._lookup(plan, disposition, if_destroyed="")
        if not made:
            raise KeyStoreError(f"no archive identity for {plan}/{disposition} to destroy")
        size = secret_path.stat().st_size
        with secret_path.open("r+b") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        secret_path.unlink()
        log.info("destroyed archive identity for %s/%s", plan, disposition)
        return secret_path

    def pseudonym_key(self, plan: str) -> bytes:
        """The plan's secret key (32 random bytes, stored encrypted to the master key,
        created on first use, atomically) under which customer identifiers are recorded as
        HMAC-SHA256: the same customer gives the same value within the plan, and nobody
        without the key can test a guessed address against it (a plain SHA-256 of an
        e-mail address is reversed by hashing a list of addresses)."""
        if not _NAME.match(plan):
            raise KeyStoreError(f"not a plan name: {plan!r}")
        path = self.root / plan / "pseudonym.key.age"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_exclusive(path, pyrage.encrypt(os.urandom(32), [self._master.to_public()]))
        try:
            key = pyrage.decrypt(path.read_bytes(), [self._master])
        except pyrage.DecryptError as exc:
            raise IntegrityError(f"{path}: cannot be decrypted with this master key") from exc
        if len(key) != 32:
            raise IntegrityError(f"{path}: not a 32-byte key")
        return bytes(key)

    # ------------------------------------------------------------------ signing

    def signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key that signs manifests (stored encrypted to the master key);
        created on first use, atomically, as archive identities are."""
        path = self.root / "signing.key.age"
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.root.mkdir(parents=True, exist_ok=True)
            _create_exclusive(path, pyrage.encrypt(pem, [self._master.to_public()]))
        pem = pyrage.decrypt(path.read_bytes(), [self._master])
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{path} is not an Ed25519 key")
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        published = self.root / "signing.pub.pem"
        if not _create_exclusive(published, public) and published.read_bytes() != public:
            raise IntegrityError(
                f"{self.root / 'signing.pub.pem'} is not the public half of the signing key"
            )
        return key

    def public_signing_key_pem(self) -> bytes:
        """The published public key (PEM) that verifies manifests: `openssl pkeyutl -verify`."""
        self.signing_key()
        return (self.root / "signing.pub.pem").read_bytes()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError("the public key is not an Ed25519 key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<hex>``: the SHA-256 of the key's DER SubjectPublicKeyInfo, as
    ``openssl pkey -pubin -in signing.pub.pem -outform DER | sha256sum`` prints it."""
    import hashlib

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` durably unless it exists; True if this call made it.

    Written to a unique temporary file, fsynced, then hard-linked into place: the link is
    atomic and fails when the name exists, so concurrent creators cannot overwrite a key.
    """
    import uuid

    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
