"""SFTP delivery with paramiko: pinned host key, resumable uploads, verified on arrival.

* The host key comes from the connection and is compared with the server's before
  authentication: no key pinned, no connection; a different key fails naming both SHA-256
  fingerprints (as ``ssh-keygen -lf`` prints them) before a byte of data is sent.
* Uploads go to ``.<name>.partial`` and are renamed (posix-rename@openssh.com) when complete.
  A retry finds the partial file, checks that it is a prefix of ours by its SHA-256 and
  carries on from there; anything else is started over.
* Arrival is verified with ``sha256sum`` run on the server where it allows commands, else by
  reading the file back and hashing it.
* Throughput: AES-GCM preferred (paramiko's default order starts with AES-CTR + HMAC),
  pipelined 252 KiB write requests (OpenSSH takes up to 256 KiB; paramiko sends 32 KiB),
  no compression (the payload is already compressed and encrypted).
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import shlex
import socket
import stat
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import paramiko

from retirement.destinations.base import Delivery, Destination, Receipt, expect, utc_now
from retirement.errors import HostKeyMismatch, IntegrityError, TransferError
from retirement.formats.digests import feed, stream_sha256

if TYPE_CHECKING:
    from collections.abc import Iterator

    from retirement.connect.info import ConnectionInfo

REQUEST_SIZE = 252 * 1024
PREFERRED_CIPHERS = ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com")
_SHA_LINE = re.compile(r"^([0-9a-f]{64})\b")
SSH_ERRORS = (paramiko.SSHException, OSError, EOFError)  # what paramiko raises, all of it


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as OpenSSH prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_host_key(text: str, where: str) -> paramiko.PKey:
    """A pinned key: ``ssh-ed25519 AAAA…`` (known_hosts style, host omitted) or bare base64."""
    parts = text.split()
    if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-")):
        parts = parts[:2]
    elif len(parts) >= 3:  # "host keytype base64"
        parts = parts[1:3]
    try:
        blob = base64.b64decode(parts[-1], validate=True)
        key_type = parts[0] if len(parts) == 2 else paramiko.Message(blob).get_text()
        return paramiko.PKey.from_type_string(key_type, blob)
    except Exception as exc:
        raise TransferError(
            f"{where}: host_key is not an SSH public key: give the server's key as "
            "'ssh-ed25519 AAAA…' (from `ssh-keyscan -t ed25519 HOST`) or its base64 part"
        ) from exc


class SftpDestination(Destination):
    kind = "sftp"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int = 22,
        username: str,
        host_key: paramiko.PKey,
        pkey: paramiko.PKey | None = None,
        password: str | None = None,
        base_path: str = ".",
        timeout: float = 20.0,
        remote_hash: str = "auto",
    ) -> None:
        super().__init__(name)
        self.host, self.port, self.username = host, port, username
        self.host_key, self._pkey, self._password = host_key, pkey, password
        self.base_path, self.timeout, self.remote_hash = base_path, timeout, remote_hash
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._can_exec: bool | None = None if remote_hash == "auto" else remote_hash == "exec"

    @classmethod
    def from_connection(
        cls, name: str, conn: ConnectionInfo, *, path: str | None = None
    ) -> SftpDestination:
        extra = conn.extra
        where = f"destination {name} (connection {conn.conn_id})"
        if str(extra.get("no_host_key_check", "false")).lower() == "true":
            raise TransferError(
                f"{where}: no_host_key_check is true; host key checking cannot be switched "
                "off: pin the server's key in extra.host_key"
            )
        if not extra.get("host_key"):
            raise TransferError(
                f"{where}: no host key pinned: add the server's public key to the "
                "connection's extra as host_key ('ssh-ed25519 AAAA…', from "
                "`ssh-keyscan -t ed25519 HOST`); unknown hosts are refused"
            )
        if not conn.host or not conn.login:
            raise TransferError(f"{where}: the connection needs host and login")
        return cls(
            name,
            host=conn.host,
            port=int(conn.port or 22),
            username=conn.login,
            host_key=parse_host_key(str(extra["host_key"]), where),
            pkey=_private_key(extra, where),
            password=conn.password,
            base_path=path or extra.get("path") or ".",
            timeout=float(extra.get("conn_timeout", 20)),
            remote_hash=str(extra.get("remote_hash", "auto")),
        )

    # ------------------------------------------------------------------ session

    @property
    def where(self) -> str:
        return f"{self.name} (sftp {self.username}@{self.host}:{self.port})"

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._transport and self._transport.is_active():
            return self._sftp
        self.close()
        if self._pkey is None and not self._password:
            raise TransferError(f"{self.where}: the connection has no private key or password")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise TransferError(f"{self.where}: cannot connect: {exc}") from exc
        transport = paramiko.Transport(sock)
        try:
            options = transport.get_security_options()
            preferred = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
            options.ciphers = (*preferred, *(c for c in options.ciphers if c not in preferred))
            transport.start_client(timeout=self.timeout)
            offered = transport.get_remote_server_key()
            if offered.asbytes() != self.host_key.asbytes():
                raise HostKeyMismatch(
                    f"{self.where}: the server's host key is {offered.get_name()} "
                    f"{fingerprint(offered)}, but the connection pins "
                    f"{self.host_key.get_name()} {fingerprint(self.host_key)}: refusing to "
                    "send anything. If the server's key was changed on purpose, update "
                    "host_key in the connection"
                )
            if self._pkey is not None:
                transport.auth_publickey(self.username, self._pkey)
            else:
                transport.auth_password(self.username, self._password or "")
            self._transport = transport
            self._sftp = paramiko.SFTPClient.from_transport(transport)
        except TransferError:
            transport.close()
            raise
        except SSH_ERRORS as exc:
            transport.close()
            raise TransferError(f"{self.where}: SSH session failed: {exc}") from exc
        if self._sftp is None:
            transport.close()
            raise TransferError(f"{self.where}: the server opened no SFTP channel")
        return self._sftp

    @contextmanager
    def _session(self, doing: str, after: str = "") -> Iterator[paramiko.SFTPClient]:
        """The SFTP session, with every error paramiko raises while ``doing`` translated
        into one TransferError (the one place this client's errors are mapped)."""
        try:
            yield self._connect()
        except TransferError:
            raise
        except SSH_ERRORS as exc:
            self.close()
            raise TransferError(f"{self.where}: {doing}: {exc}{after}") from exc

    def close(self) -> None:
        """Close the session; a peer that already died is not an error here."""
        sftp, transport, self._sftp, self._transport = self._sftp, self._transport, None, None
        try:
            if sftp is not None:
                sftp.close()  # sends a channel close: fails if the socket is dead
        except SSH_ERRORS:
            pass
        finally:
            if transport is not None:
                transport.close()

    # ------------------------------------------------------------------ paths

    def _final(self, sftp: paramiko.SFTPClient, item: Delivery) -> str:
        return posixpath.join(sftp.normalize(self.base_path), item.name)

    # ------------------------------------------------------------------ digests

    def _exec_sha256(self, path: str, length: int | None = None) -> str | None:
        """``sha256sum`` on the server; None where it runs no commands (SFTP-only)."""
        if self._can_exec is False or self._transport is None:
            return None
        q = shlex.quote(path)
        command = f"sha256sum -- {q}" if length is None else f"head -c {length} -- {q} | sha256sum"
        try:
            channel = self._transport.open_session(timeout=self.timeout)
            channel.exec_command(command)
            channel.shutdown_write()  # a forced internal-sftp sees EOF and ends at once
            output = b""
            while data := channel.recv(4096):
                output += data
            status = channel.recv_exit_status()
            channel.close()
        except (paramiko.SSHException, OSError):
            self._can_exec = False
            return None
        match = _SHA_LINE.match(output.decode("ascii", "replace"))
        if status != 0 or match is None:
            self._can_exec = False
            return None
        self._can_exec = True
        return match.group(1)

    def _read_sha256(self, sftp: paramiko.SFTPClient, path: str, length: int) -> str:
        h = hashlib.sha256()
        with sftp.open(path, "rb") as f:
            f.MAX_REQUEST_SIZE = REQUEST_SIZE
            f.prefetch(length)
            feed(f, h, length)
        return h.hexdigest()

    def remote_sha256(
        self, sftp: paramiko.SFTPClient, path: str, length: int, *, whole: bool
    ) -> tuple[str, str]:
        digest = self._exec_sha256(path, None if whole else length)
        if digest is not None:
            return digest, "sha256sum on the server"
        return self._read_sha256(sftp, path, length), "read back over SFTP and hashed (sha256)"

    # ------------------------------------------------------------------ deliver

    def published(self, item: Delivery) -> bool:
        with self._session(f"cannot verify {item.name}") as sftp:
            return remote_size(sftp, self._final(sftp, item)) is not None

    @contextmanager
    def store(self, item: Delivery) -> Iterator[SftpFolder]:
        after = "; nothing was published, a retry resumes from what arrived"
        with self._session(f"upload of {item.name} interrupted", after) as sftp:
            yield SftpFolder(self, sftp)

    def delete(self, name: str) -> int:
        with self._session(f"cannot delete {name}") as sftp:
            path = posixpath.join(sftp.normalize(self.base_path), name)
            if remote_size(sftp, path) is None:
                return 0
            sftp.remove(path)
        return 1

    def verify(self, item: Delivery, receipt: dict[str, Any] | None = None) -> Receipt:
        with self._session(f"cannot verify {item.name}") as sftp:
            final = self._final(sftp, item)
            size = remote_size(sftp, final)
            found = None if size is None else self.remote_sha256(sftp, final, size, whole=True)
        if size is None or found is None:
            raise IntegrityError(f"{self.where}: {final} is missing")
        digest, method = found
        expect(item, f"{self.where}:{final}", size, digest)
        return Receipt(
            destination=self.name,
            kind=self.kind,
            location=f"sftp://{self.username}@{self.host}:{self.port}{final}",
            name=item.name,
            size=size,
            sha256=digest,
            verified_at=utc_now(),
            method=method,
        )


def remote_size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    """The size of a regular file on the server; None where there is none."""
    try:
        attrs = sftp.stat(path)
    except FileNotFoundError:
        return None
    return None if attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode) else attrs.st_size


def makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    missing = []
    while folder not in ("", "/"):
        try:
            sftp.stat(folder)
            break
        except FileNotFoundError:
            missing.append(folder)
            folder = posixpath.dirname(folder)
    for path in reversed(missing):
        sftp.mkdir(path)


class SftpUpload:
    """``.<name>.partial`` on the server, renamed over the name when published
    (posix-rename@openssh.com, else remove and rename)."""

    def __init__(self, dest: SftpDestination, sftp: paramiko.SFTPClient, final: str, size: int):
        self.dest, self.sftp, self.final, self.size = dest, sftp, final, size
        folder, leaf = posixpath.split(final)
        self.partial = posixpath.join(folder, f".{leaf}.partial")
        self._kept = 0
        self._out: paramiko.SFTPFile | None = None

    def keep(self, source: IO[bytes]) -> int:
        have = remote_size(self.sftp, self.partial)
        if have and have <= self.size:
            remote, _ = self.dest.remote_sha256(self.sftp, self.partial, have, whole=False)
            if remote == stream_sha256(source, have):
                self._kept = have
        return self._kept  # otherwise not a prefix of ours: overwritten

    def _opened(self) -> paramiko.SFTPFile:
        if self._out is None:
            makedirs(self.sftp, posixpath.dirname(self.final))
            out = self.sftp.open(self.partial, "r+b" if self._kept else "wb")
            out.MAX_REQUEST_SIZE = REQUEST_SIZE
            out.set_pipelined(True)
            out.seek(self._kept)
            self._out = out
        return self._out

    def write(self, chunk: bytes) -> None:
        self._opened().write(chunk)

    def finish(self) -> tuple[int, int]:
        self._opened().close()
        return remote_size(self.sftp, self.partial) or 0, self._kept

    def publish(self) -> None:
        try:
            self.sftp.posix_rename(self.partial, self.final)  # replaces an altered copy
        except OSError:  # servers without posix-rename@openssh.com
            if remote_size(self.sftp, self.final) is not None:
                self.sftp.remove(self.final)
            self.sftp.rename(self.partial, self.final)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
        self.sftp.remove(self.partial)


class SftpFolder:
    """The destination's folder on the server, as a store (``destinations.store.Store``)."""

    def __init__(self, dest: SftpDestination, sftp: paramiko.SFTPClient) -> None:
        self.dest, self.sftp, self.base = dest, sftp, sftp.normalize(dest.base_path)

    def upload(self, name: str, size: int) -> SftpUpload:
        return SftpUpload(self.dest, self.sftp, posixpath.join(self.base, name), size)


def _private_key(extra: dict[str, Any], where: str) -> paramiko.PKey | None:
    """``extra.private_key`` (the key's text) or ``extra.key_file`` (a path)."""
    passphrase = extra.get("private_key_passphrase")
    try:
        if extra.get("private_key"):
            return _key_from_text(str(extra["private_key"]), passphrase)
        if extra.get("key_file"):
            return paramiko.PKey.from_path(str(extra["key_file"]), passphrase)
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise TransferError(
            f"{where}: cannot load the private key from the connection's extra "
            f"({'private_key' if extra.get('private_key') else 'key_file'}): {exc}"
        ) from exc
    return None


def _key_from_text(text: str, passphrase: str | None) -> paramiko.PKey:
    import io

    last: Exception | None = None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.SSHException as exc:
            last = exc
    raise paramiko.SSHException(f"not an Ed25519, ECDSA or RSA private key ({last})")
