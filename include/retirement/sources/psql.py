"""PostgreSQL's own client, ``psql``, running a ``COPY ... TO STDOUT`` for us: its output is
read from a pipe in large blocks, so no Python call is made per row (the driver hands COPY's
rows one message at a time), and psql's process works on another core.

psql connects with our connection's parameters, password and TLS options included, passed
as libpq's environment variables (nothing secret on its command line), ignores any
``.psqlrc`` (``-X``), and gets our session's output settings (``SET``), so that its text is
the driver's, byte for byte. Its errors go to a temporary file, not a pipe: psql never
blocks on an error stream nobody reads. Leaving :func:`psql_copy` kills psql if it still
runs (the reader stopped early, or failed) and always reaps it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa

from retirement.errors import SourceError

if TYPE_CHECKING:
    from collections.abc import Iterator

# Session settings that shape COPY's text output: psql's session gets ours.
OUTPUT_SETTINGS = (
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "extra_float_digits",
    "bytea_output",
)

_MESSAGE_CHARS = 2000  # of psql's error output, in the SourceError


def psql_env(raw: Any) -> dict[str, str]:
    """psql's environment: our connection's parameters (password included) as libpq's
    environment variables, so that nothing secret is on its command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for option in raw.pgconn.info:
        if option.val is not None and option.envvar:
            env[option.envvar.decode()] = option.val.decode()
    return env


def output_settings(conn: sa.Connection) -> list[str]:
    """``SET`` statements that give another session this session's output settings."""
    lines = []
    for name in OUTPUT_SETTINGS:
        value = conn.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar()
        lines.append(f"SET {name} = '{str(value).replace(chr(39), chr(39) * 2)}';")
    return lines


class PsqlCopy:
    """A running psql: ``stdout`` is its output (the COPY's bytes); :meth:`finish` after
    reading it to its end, :meth:`stopped_by_failure` when reading it failed."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes], where: str) -> None:
        if proc.stdout is None:  # never: Popen is given a pipe
            raise SourceError(f"{where}: psql has no output pipe")
        self.stdout: IO[bytes] = proc.stdout
        self._proc = proc
        self._errors = errors
        self._where = where
        self._killed = False

    def finish(self) -> None:
        """psql's end, once its output was read to the end: SourceError with psql's message
        unless it succeeded."""
        self._raise_if_failed(self._proc.wait())

    def stopped_by_failure(self) -> None:
        """Reading psql's output failed: stop psql, and raise SourceError with its message if
        psql had failed by itself (a cut-off or empty output is then psql's doing)."""
        self.stop()
        if not self._killed:
            self._raise_if_failed(self._proc.wait())

    def stop(self) -> None:
        """Kill psql if it still runs; reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._killed = True
        self._proc.wait()

    def _raise_if_failed(self, status: int) -> None:
        if status == 0:
            return
        self._errors.seek(0)
        message = self._errors.read().decode(errors="replace").strip()
        if len(message) > _MESSAGE_CHARS:
            message = "..." + message[-_MESSAGE_CHARS:]
        if "lock timeout" in message:
            message += (
                " (another session is changing the table's definition: TRUNCATE, ALTER "
                "TABLE, DROP, a rename; run this again once it is done)"
            )
        raise SourceError(
            f"{self._where} with psql (exit status {status}): {message or '(no message)'}"
        )


@contextmanager
def psql_copy(psql: str, script: bytes, env: dict[str, str], where: str) -> Iterator[PsqlCopy]:
    """psql (the executable's path) running ``script`` in the environment ``env``
    (:func:`psql_env`). ``where`` begins its errors (``source S: cannot read table T``).
    psql is killed if it still runs when the block ends, and always reaped."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # a fixed argv; the connection goes in the environment
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        run = PsqlCopy(proc, errors, where)
        try:
            if proc.stdin is None:  # never: Popen is given a pipe
                raise SourceError(f"{where}: psql has no input pipe")
            try:
                with proc.stdin as stdin:
                    stdin.write(script)
            except BrokenPipeError as exc:  # psql ended before reading it all
                run.stopped_by_failure()
                raise SourceError(f"{where} with psql: psql did not read its script") from exc
            yield run
        finally:
            run.stop()
            run.stdout.close()
