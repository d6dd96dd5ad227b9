"""The `retirement` commands for archives and evidence: verify and restore backups, verify
certificates, audit closure dossiers. Registered on ``retirement.cli.app`` when
``retirement.cli.root`` imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from retirement.cli.app import EXIT_FAILED, EXIT_USAGE, app, err, out

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from retirement.model.manifest import Manifest
    from retirement.vault.verify import VerifyReport

_T = TypeVar("_T")

KeyStoreOpt = Annotated[
    Path | None,
    typer.Option("--key-store", help="The key store folder (archive identities, signing key)."),
]
MasterOpt = Annotated[
    Path | None,
    typer.Option(
        "--master-key-file", help="File with the master age identity; or set RETIREMENT_MASTER_KEY."
    ),
]
IdentityOpt = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        help="Your own age identity file (a recipient of the backup), instead of the key store.",
    ),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The published Ed25519 key (PEM) that signs manifests; default: "
        "signing.pub.pem in the key store.",
    ),
]


def _keys_for(
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


def _with_progress(manifest_path: Path, run: Callable[[Callable[[int], None]], _T]) -> _T:
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


@app.command("verify-backup")
def verify_backup_cmd(
    manifest: Annotated[Path, typer.Argument(help="The backup's manifest (…manifest.json).")],
    key_store: KeyStoreOpt = None,
    master_key_file: MasterOpt = None,
    identity: IdentityOpt = None,
    public_key: PublicKeyOpt = None,
) -> None:
    """Check a backup end to end: signature, ciphertext digest, decryption, row count and digest."""
    from retirement.errors import IntegrityError, RetirementError
    from retirement.vault.verify import verify_backup

    try:
        pub, ids = _keys_for(manifest, key_store, master_key_file, identity, public_key)
        report = _with_progress(
            manifest, lambda tick: verify_backup(manifest, pub, ids, on_bytes=tick)
        )
    except (IntegrityError, RetirementError, OSError) as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(
        f"✓ {report.manifest.dataset}: {report.rows:,} rows, row digest "
        f"{report.row_digest[:16]}…, plaintext sha256 {report.plaintext_sha256[:16]}… "
        "match the signed manifest",
        markup=False,
    )


def _restricted_use(
    manifest: Path, reason: str | None, ledger: str | None
) -> dict[str, Any] | None:
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


def _record_restore(
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


@app.command("restore")
def restore_cmd(
    manifest: Annotated[Path, typer.Argument(help="The backup's manifest (…manifest.json).")],
    to: Annotated[
        Path | None, typer.Option("--to", help="Folder to write the restored file into.")
    ] = None,
    to_db: Annotated[
        str | None,
        typer.Option("--to-db", help="Database URL to load a table backup into (one transaction)."),
    ] = None,
    table: Annotated[
        str | None, typer.Option("--table", help="With --to-db: the target table's name.")
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="Why an archive under retention is restored (restricted use, PIPL Art. 47); "
            "recorded in the ledger with who and when.",
        ),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="SQLAlchemy URL of the ledger that records a restore of a retained archive.",
            envvar="RETIREMENT_LEDGER_URL",
        ),
    ] = None,
    key_store: KeyStoreOpt = None,
    master_key_file: MasterOpt = None,
    identity: IdentityOpt = None,
    public_key: PublicKeyOpt = None,
) -> None:
    """Restore a backup, verified while it is written, kept only when every check passes.

    --to DIR writes the CSV (tables) or the file itself (documents) under a temporary name,
    readable only by you (mode 0600, a folder it creates 0700), and never replaces a file;
    --to-db URL loads a table inside one transaction that commits only after verification,
    into a new or an empty table (never one that already holds rows).
    """
    from retirement.errors import IntegrityError, RetirementError
    from retirement.vault.restore_db import restore_to_db

    if (to is None) == (to_db is None):
        raise typer.BadParameter("give exactly one of --to DIR or --to-db URL")
    terms = _restricted_use(manifest, reason, ledger)
    try:
        pub, ids = _keys_for(manifest, key_store, master_key_file, identity, public_key)
        if to_db is not None:
            report, name = _with_progress(
                manifest,
                lambda tick: restore_to_db(manifest, to_db, pub, ids, table=table, on_bytes=tick),
            )
            where, note = f"table {name}", ""
        else:
            if to is None:  # unreachable: exactly one of --to and --to-db was checked above
                raise typer.BadParameter("give exactly one of --to DIR or --to-db URL")
            report, target, mode = _restore_into_dir(manifest, to, pub, ids)
            where = str(target)
            note = f" (mode {mode:04o}: plaintext customer data, delete it when done)"
    except (IntegrityError, RetirementError, OSError) as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if terms is not None:
        if ledger is None or reason is None:  # unreachable: _restricted_use demands both
            raise typer.BadParameter(
                "restoring an archive under retention needs --reason and --ledger"
            )
        _record_restore(ledger, report.manifest, reason, where, terms)
    out.print(
        f"✓ restored {report.manifest.dataset}: {report.rows:,} rows → {where}{note}", markup=False
    )


def _restore_into_dir(
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
            report = _with_progress(
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


@app.command("verify-certificate")
def verify_certificate_cmd(
    certificate: Annotated[Path, typer.Argument(help="A certificate of sanitization (.json).")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The published signing.pub.pem.")
    ],
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="SQLAlchemy URL of the ledger: also check that it recorded this certificate, "
            "marks the dataset deleted and holds the same backup digest.",
            envvar="RETIREMENT_LEDGER_URL",
        ),
    ] = None,
) -> None:
    """Check a certificate's Ed25519 signature and, with --ledger, cross-check the ledger."""
    from retirement.crypto.keys import load_public_key
    from retirement.errors import IntegrityError, RetirementError
    from retirement.evidence.certificate import verify_certificate
    from retirement.ledger.core import Ledger

    led = None
    try:
        led = Ledger.open(ledger, create=False) if ledger else None
        cert = verify_certificate(certificate, load_public_key(public_key.read_bytes()), led)
    except (IntegrityError, RetirementError, OSError, ValueError) as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        if led is not None:
            led.close()
    target, how = cert["target"], cert["sanitization"]
    out.print(
        f"✓ {certificate.name}: {target['dataset']} ({target['rows']:,} rows, "
        f"{target['data_class']}) sanitized by {how['method']} ({how['technique']}), approved "
        f"by {cert['approval']['approved_by']}; signature verified"
        + ("; the ledger agrees" if ledger else " (give --ledger to cross-check)"),
        markup=False,
    )


@app.command("audit")
def audit_cmd(
    dossier: Annotated[Path, typer.Argument(help="A closure dossier folder.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The company's published signing.pub.pem (default: the copy inside the dossier).",
        ),
    ] = None,
) -> None:
    """Check a closure dossier offline: signed digests, every file, every signature, the
    ledger's hash chain up to the signed head. Exits 1 naming what fails."""
    from retirement.crypto.keys import load_public_key
    from retirement.evidence.dossier import audit

    try:
        key = load_public_key(public_key.read_bytes()) if public_key else None
        problems = audit(dossier, key)
    except (OSError, ValueError) as exc:
        err.print(f"✗ {dossier}: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if problems:
        for problem in problems:
            err.print(f"✗ {problem}", markup=False)
        raise typer.Exit(EXIT_FAILED)
    out.print(
        f"✓ {dossier}: every file matches the signed SHA256SUMS, every signature verifies, "
        "the ledger chain ends at the signed head",
        markup=False,
    )
