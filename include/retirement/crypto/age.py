"""age encryption of a backup stream and the decrypting reader (zstd inside, age outside).

A recipient decrypts with ``age -d -i KEY FILE | zstd -d``; the library does the same,
streaming in fixed chunks: with the ``age`` command where it is installed (its Go
ChaCha20-Poly1305 runs three to four times as fast as pyrage's here, bench/RESULTS.md), else
in process with pyrage. Both write and read the same age v1 files. The identity reaches
``age -d`` on its standard input (``-i -``), never on its command line or on disk; the
recipients, public keys, are its arguments.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import shutil
import subprocess
import threading
from typing import IO, TYPE_CHECKING, Any

import pyrage
import zstandard

from retirement.errors import IntegrityError
from retirement.formats.digests import CHUNK

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


class HashingWriter:
    """Write-through to ``out`` counting and hashing the bytes (also the notices' CSV)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def writable(self) -> bool:
        return True


def age_command() -> str | None:
    """The ``age`` command on PATH if it is version 1.1 or later (``-i -``, an identity on
    standard input, came with 1.1); else None (pyrage is used)."""
    found = shutil.which("age")
    return found if found is not None and _recent(found) else None


@functools.lru_cache(maxsize=8)
def _recent(path: str) -> bool:
    try:
        said = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = re.search(r"(\d+)\.(\d+)", said)
    return found is not None and (int(found[1]), int(found[2])) >= (1, 1)


# Below this many bytes, starting an age process costs more than pyrage's slower cipher.
AGE_PROCESS_MIN = 4 << 20


def encrypt_to(
    read_fd: int, target: Path, recipients: list[Any], *, size: int | None = None
) -> HashingWriter:
    """age-encrypt the pipe into ``target`` (fsynced); return the hashing writer. ``size``:
    the plaintext's size where known (a small one is encrypted in process)."""
    age = age_command() if size is None or size >= AGE_PROCESS_MIN else None
    with target.open("wb") as out:
        hashed = HashingWriter(out)
        if age is None:
            with os.fdopen(read_fd, "rb", buffering=CHUNK) as pipe:
                pyrage.encrypt_io(pipe, hashed, recipients)
        else:
            _age_encrypt(age, read_fd, hashed, recipients)
        out.flush()
        os.fsync(out.fileno())
    return hashed


def _age_encrypt(age: str, read_fd: int, hashed: HashingWriter, recipients: list[Any]) -> None:
    """``age -r R ...`` reading the pipe itself, its output hashed into ``hashed``; OSError
    naming age's complaint when it fails."""
    argv = [age] + [arg for r in recipients for arg in ("-r", str(r))]
    try:
        proc = subprocess.Popen(argv, stdin=read_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        os.close(read_fd)  # the child has its own copy (or there is no child)
    out, err = _pipes(proc)
    try:
        while chunk := out.read(CHUNK):
            hashed.write(chunk)
    except BaseException:
        proc.kill()
        raise
    finally:
        out.close()
        complaint = err.read().decode(errors="replace").strip()
        err.close()
        code = proc.wait()
    if code != 0:
        raise OSError(errno.EIO, f"age exited with {code}: {complaint or 'no message'}")


def decrypted_chunks(cipher: Path, identities: list[Any]) -> Iterator[bytes]:
    """Plaintext (decompressed) chunks of an age file: decrypted by ``age -d`` or, without
    it, by pyrage in a thread. IntegrityError when it cannot be decrypted or decompressed,
    raised before the last chunk's iteration ends (a consumer never mistakes a cut file for
    a whole one)."""
    age = age_command()
    if age is None:
        yield from _pyrage_chunks(cipher, identities)
        return
    proc = subprocess.Popen(
        [age, "-d", "-i", "-", str(cipher)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = _pipes(proc)
    try:
        try:
            if proc.stdin is not None:
                proc.stdin.write("".join(f"{i}\n" for i in identities).encode())
                proc.stdin.close()
        except BrokenPipeError:
            pass  # age stopped early: its exit status and message say why
        yield from _decompressed(out, cipher, lambda: _age_failure(proc))
        broke = _age_failure(proc)
        if broke is not None:
            raise IntegrityError(_decrypt_message(cipher, broke))
    finally:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """age's output and error pipes."""
    if proc.stdout is None or proc.stderr is None:  # never: both are pipes
        raise OSError(errno.EPIPE, "age was started without its pipes")
    return proc.stdout, proc.stderr


def _age_failure(proc: subprocess.Popen[bytes]) -> BaseException | None:
    """Why ``age -d`` failed (None: it succeeded): what it still writes is read and dropped
    first, so that it can end."""
    out, err = _pipes(proc)
    while out.read(CHUNK):
        pass
    code = proc.wait()
    if code == 0:
        return None
    message = err.read().decode(errors="replace").strip()
    return RuntimeError(message.removeprefix("age: error: ") or f"age exited with {code}")


def _decompressed(
    compressed: IO[bytes], cipher: Path, failure: Callable[[], BaseException | None]
) -> Iterator[bytes]:
    """zstd frames of ``compressed`` decompressed in CHUNK pieces; on a zstd error, the
    decrypting side's failure when it has one (a wrong key or a cut file), else the error."""
    dctx = zstandard.ZstdDecompressor()
    try:
        with dctx.stream_reader(compressed, read_across_frames=True, closefd=False) as plain:
            while chunk := plain.read(CHUNK):
                yield chunk
    except zstandard.ZstdError as exc:
        broke = failure()
        if broke is not None:
            raise IntegrityError(_decrypt_message(cipher, broke)) from broke
        raise IntegrityError(f"{cipher}: the decrypted data is not valid zstd: {exc}") from exc


def _pyrage_chunks(cipher: Path, identities: list[Any]) -> Iterator[bytes]:
    """Plaintext (decompressed) chunks of an age file, decrypted by pyrage in a thread."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def decrypt() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=CHUNK) as sink, cipher.open("rb") as src:
                pyrage.decrypt_io(src, sink, identities)
        except BaseException as exc:  # re-raised in the reading thread
            failure.append(exc)

    worker = threading.Thread(target=decrypt, name=f"decrypt-{cipher.name}", daemon=True)
    worker.start()
    with os.fdopen(read_fd, "rb", buffering=CHUNK) as pipe:

        def failed() -> BaseException | None:
            pipe.close()  # the decrypting thread, blocked on a full pipe, ends
            worker.join()
            # a broken pipe only says that the reader stopped (on a zstd error)
            broke = failure[0] if failure else None
            return None if isinstance(broke, BrokenPipeError) else broke

        yield from _decompressed(pipe, cipher, failed)
    worker.join()
    if failure:
        raise IntegrityError(_decrypt_message(cipher, failure[0])) from failure[0]


def _decrypt_message(cipher: Path, exc: BaseException) -> str:
    return (
        f"{cipher}: cannot be decrypted ({exc.__class__.__name__}: {exc}): a wrong key, "
        "or the file was altered or truncated"
    )
