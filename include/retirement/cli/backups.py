"""What the backup commands of :mod:`retirement.cli.archive` do with a backup: find the keys
that open it, show a progress bar over it, and restore it (into a folder or a database; an
archive under retention only for a recorded reason)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import typer

from retirement.cli.app import EXIT_FAILED, EXIT_USAGE, err

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.model.manifest import Manifest
    from retirement.vault.verify import VerifyReport

_T = TypeVar("_T")


def keys_for(
    manifest_path: Path,
    key_store: Path | None,
    master_file: Path | None,
    identity: Path | None,
    public_key: Path | None,
) -> tuple[Ed25519PublicKey, list[Any]]:
    """(public signing key, identities) for verifying one backup."""
    import os

    import pyrage

    from retirement.crypto.keys import KeyStore, load_public_key
    from retirement.model.manifest import Manifest

    if public_key is not None:
        pem = public_key.read_bytes()
    elif key_store is not None:
        pem = (key_store / "signing.pub.pem").read_bytes()
    else:
        raise typer.BadParameter("give --public-key, or --key-store that holds signing.pub.pem")
    if identity is not None:
        lines = [ln for ln in identity.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-")]
        if not lines:
            raise typer.BadParameter(f"{identity} holds no AGE-SECRET-KEY-1... line")
        return load_public_key(pem), [pyrage.x25519.Identity.from_str(lines[0])]
    if key_store is None:
        raise typer.BadParameter("give --identity, or --key-store with the master key")
    master = (
        KeyStore.read_master_key(master_file)
        if master_file
        else os.environ.get("RETIREMENT_MASTER_KEY", "")
    )
    if not master:
        raise typer.BadParameter(
            "the master key: give --master-key-file or set RETIREMENT_MASTER_KEY"
        )
    manifest = Manifest.from_bytes(manifest_path.read_bytes(), where=str(manifest_path))
    store = KeyStore(key_store, master)
    return load_public_key(pem), [store.identity(manifest.plan, manifest.disposition)]


def with_progress(manifest_path: Path, run: Callable[[Callable[[int], None]], _T]) -> _T:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from retirement.model.manifest import Manifest

    total = Manifest.from_bytes(manifest_path.read_bytes()).plaintext_size
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,  # a bar while it works; afterwards only the result line
        disable=not err.is_terminal,  # no bar art in the logs of scheduled jobs
    ) as bar:
        task = bar.add_task("verifying", total=total)
        return run(lambda n: bar.advance(task, n))


def restricted_use(manifest: Path, reason: str | None, ledger: str | None) -> dict[str, Any] | None:
    """Refuse to restore an archive under retention without a reason and a ledger."""
    from datetime import UTC, datetime

    from retirement.model.manifest import Manifest
    from retirement.plan.retention import under_retention

    m = Manifest.from_bytes(manifest.read_bytes(), where=str(manifest))
    terms = under_retention(m.extra, datetime.now(UTC).date())
    if terms is None:
        return None
    if not reason or not reason.strip() or not ledger:
        err.print(
            f"✗ {m.dataset} is a retained archive (until {terms['retain_until']}, "
            f"{terms['legal_basis']}): while retained it may only be stored and protected "
            "(PIPL Art. 47). Restoring it is restricted use: give --reason TEXT and --ledger "
            "URL (or RETIREMENT_LEDGER_URL) so who, when and why are recorded.",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
    from retirement.errors import LedgerError
    from retirement.ledger.core import Ledger

    try:
        Ledger.open(ledger, create=False).close()  # it must record the restore: check first
    except LedgerError as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    return terms


def record_restore(
    ledger: str, manifest: Manifest, reason: str, where: str, terms: dict[str, Any]
) -> None:
    import getpass

    from retirement.ledger.core import Ledger

    led = Ledger.open(ledger, create=False)
    try:
        led.append(
            "archive_restored",
            actor=f"cli:{getpass.getuser()}",
            dataset=manifest.dataset,
            payload={
                "reason": reason,
                "to": where,
                "plan": manifest.plan,
                "ciphertext_sha256": manifest.ciphertext_sha256,
                "retention": terms,
            },
        )
    finally:
        led.close()


def restore(
    manifest: Path,
    pub: Ed25519PublicKey,
    ids: list[Any],
    *,
    to: Path | None,
    to_db: str | None,
    table: str | None,
) -> tuple[VerifyReport, str, str]:
    """(report, where it went, a note for the operator) of the backup restored into the
    folder ``to`` or, when given, the database ``to_db``."""
    if to_db is not None:
        from retirement.vault.restore_db import restore_to_db

        report, name = with_progress(
            manifest,
            lambda tick: restore_to_db(manifest, to_db, pub, ids, table=table, on_bytes=tick),
        )
        return report, f"table {name}", ""
    if to is None:  # unreachable: the command checked exactly one of --to and --to-db
        raise typer.BadParameter("give exactly one of --to DIR or --to-db URL")
    report, target, mode = restore_into_dir(manifest, to, pub, ids)
    return report, str(target), f" (mode {mode:04o}: plaintext customer data, delete it when done)"


def restore_into_dir(
    manifest: Path, to: Path, pub: Ed25519PublicKey, ids: list[Any]
) -> tuple[VerifyReport, Path, int]:
    """(report, path, mode) of a backup restored as one file in ``to``, readable only by its
    owner from the first byte: created 0600 under a temporary name (O_EXCL, never chmod-ed
    later), in a folder created 0700; an existing file is never replaced."""
    import os
    import stat

    from retirement.errors import RestoreError
    from retirement.model.manifest import Manifest
    from retirement.vault.verify import restore_to_file

    m = Manifest.from_bytes(manifest.read_bytes(), where=str(manifest))
    fname = m.dataset.replace("/", "_") + (".csv" if m.format == "csv" else "")
    target, partial = to / fname, to / f".{fname}.partial"
    taken = RestoreError(
        f"{target} already exists (an earlier restore?); nothing was restored, and a restore "
        "never replaces a file: move it away, or restore --to another folder"
    )
    to.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing folder keeps its mode
    if os.path.lexists(target):
        raise taken
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(partial, flags, 0o600)
    except FileExistsError:
        raise RestoreError(
            f"{partial} already exists: another restore is writing it, or one was interrupted "
            "(then it holds plaintext customer data: delete it); nothing was restored"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            report = with_progress(
                manifest, lambda tick: restore_to_file(manifest, f, pub, ids, tick)
            )
        try:
            os.link(partial, target)  # fails if the name was taken meanwhile: never replaces
        except FileExistsError:
            raise taken from None
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise taken from None
            os.rename(partial, target)
    finally:
        partial.unlink(missing_ok=True)  # ours (O_EXCL): after the link, the second name
    return report, target, mode
