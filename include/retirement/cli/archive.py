"""The `retirement` commands for archives and evidence: verify and restore backups, verify
certificates, audit closure dossiers. Registered on ``retirement.cli.app`` when
``retirement.cli.root`` imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from retirement.cli.app import EXIT_FAILED, EXIT_USAGE, app, err, out
from retirement.cli.backups import keys_for, record_restore, restore, restricted_use, with_progress

# The arguments and options of the backup commands (typer reads these at run time).
ManifestArg = Annotated[Path, typer.Argument(help="The backup's manifest (…manifest.json).")]
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
# The restore command's own:
ToOpt = Annotated[Path | None, typer.Option("--to", help="Folder to write the restored file into.")]
ToDbOpt = Annotated[
    str | None,
    typer.Option("--to-db", help="Database URL to load a table backup into (one transaction)."),
]
TableOpt = Annotated[
    str | None, typer.Option("--table", help="With --to-db: the target table's name.")
]
ReasonOpt = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Why an archive under retention is restored (restricted use, PIPL Art. 47); "
        "recorded in the ledger with who and when.",
    ),
]
RestoreLedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="SQLAlchemy URL of the ledger that records a restore of a retained archive.",
        envvar="RETIREMENT_LEDGER_URL",
    ),
]


@app.command("verify-backup")
def verify_backup_cmd(
    key_store: KeyStoreOpt = None,
    master_key_file: MasterOpt = None,
    identity: IdentityOpt = None,
    public_key: PublicKeyOpt = None,
    *,
    manifest: ManifestArg,
) -> None:
    """Check a backup end to end: signature, ciphertext digest, decryption, row count and digest."""
    from retirement.errors import IntegrityError, RetirementError
    from retirement.vault.verify import verify_backup

    try:
        pub, ids = keys_for(manifest, key_store, master_key_file, identity, public_key)
        report = with_progress(
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


@app.command("restore")
def restore_cmd(
    manifest: ManifestArg,
    to: ToOpt = None,
    to_db: ToDbOpt = None,
    table: TableOpt = None,
    reason: ReasonOpt = None,
    ledger: RestoreLedgerOpt = None,
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

    if (to is None) == (to_db is None):
        raise typer.BadParameter("give exactly one of --to DIR or --to-db URL")
    terms = restricted_use(manifest, reason, ledger)
    try:
        pub, ids = keys_for(manifest, key_store, master_key_file, identity, public_key)
        report, where, note = restore(manifest, pub, ids, to=to, to_db=to_db, table=table)
    except (IntegrityError, RetirementError, OSError) as exc:
        err.print(f"✗ {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if terms is not None:
        if ledger is None or reason is None:  # unreachable: restricted_use demands both
            raise typer.BadParameter(
                "restoring an archive under retention needs --reason and --ledger"
            )
        record_restore(ledger, report.manifest, reason, where, terms)
    out.print(
        f"✓ restored {report.manifest.dataset}: {report.rows:,} rows → {where}{note}", markup=False
    )


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


def _refuse_without_key(public_key: Path | None, key_fingerprint: str | None) -> None:
    """Exit 2 unless the published key or a well-formed fingerprint of it is given."""
    import re

    if public_key is None and key_fingerprint is None:
        err.print(f"✗ {_NO_KEY}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if key_fingerprint is not None and not re.fullmatch(r"SHA256:[0-9a-fA-F]{64}", key_fingerprint):
        err.print(f"✗ not a key fingerprint: {key_fingerprint!r} (SHA256:<64 hex>)", markup=False)
        raise typer.Exit(EXIT_USAGE)


def _audit_all(
    dossier: Path,
    pem: bytes | None,
    key_fingerprint: str | None,
    archives: list[Path] | None,
    identity: Path | None,
    tsa_ca: Path | None = None,
) -> tuple[Any, list[str]]:
    """(the trusted key, every problem) of the dossier, and of the archives if given."""
    from retirement.errors import IntegrityError
    from retirement.evidence.audit import audit, trusted_key

    try:
        key = trusted_key(dossier, public_key_pem=pem, key_fingerprint=key_fingerprint)
    except IntegrityError as exc:
        return None, [str(exc)]
    problems = audit(dossier, key, tsa_ca=tsa_ca)
    if archives:
        from retirement.evidence.archives import audit_archives

        opened = _identities(identity) if identity else None
        problems += audit_archives(dossier, archives, key, opened)
    return key, problems


def _identities(path: Path) -> list[Any]:
    import pyrage

    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-")]
    if not lines:
        raise typer.BadParameter(f"{path} holds no AGE-SECRET-KEY-1... line")
    return [pyrage.x25519.Identity.from_str(ln) for ln in lines]


_NO_KEY = (
    "retirement audit checks a dossier against the company's published signing key, never "
    "against the copy inside the dossier (whoever rewrote the dossier could have replaced "
    "it): give --public-key signing.pub.pem (the key as the company published it) or "
    "--key-fingerprint SHA256:<hex> (the fingerprint the company published; `make demo` "
    "and the seal step print it). See docs/audit.md"
)


TsaCa = Annotated[
    Path | None,
    typer.Option(
        "--tsa-ca",
        help="The CA certificate (PEM) of the plan's time-stamping authority: every RFC 3161 "
        "token of the dossier is verified with it (openssl ts -verify).",
    ),
]


@app.command("audit")
def audit_cmd(
    dossier: Annotated[Path, typer.Argument(help="A closure dossier folder.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The company's published signing.pub.pem (not the copy in the dossier).",
        ),
    ] = None,
    key_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--key-fingerprint",
            help="The published SHA256:<hex> fingerprint of the signing key (the sha256 of its "
            "DER SubjectPublicKeyInfo): the dossier's signing.pub.pem must have it.",
        ),
    ] = None,
    archives: Annotated[
        list[Path] | None,
        typer.Option(
            "--archives",
            help="A folder of encrypted archives (.age) or delivered copies, checked against "
            "the dossier's signed manifests and receipts (repeatable).",
        ),
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            help="An age identity file: with --archives, decrypt what it opens and compare "
            "plaintext digest, size, rows and row digest with the manifest.",
        ),
    ] = None,
    tsa_ca: TsaCa = None,
) -> None:
    """Check a closure dossier offline against the published signing key: signed digests,
    every file, every signature, the ledger's hash chain up to the signed head, the
    cross-checks of docs/audit.md, the RFC 3161 time-stamps (with --tsa-ca), and with
    --archives the archives. Exits 1 naming what
    fails, 2 without a published key."""
    from retirement.crypto.keys import fingerprint

    _refuse_without_key(public_key, key_fingerprint)
    try:
        pem = public_key.read_bytes() if public_key else None
        key, problems = _audit_all(dossier, pem, key_fingerprint, archives, identity, tsa_ca)
    except (OSError, ValueError) as exc:
        err.print(f"✗ {dossier}: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if problems:
        for problem in problems:
            err.print(f"✗ {problem}", markup=False)
        raise typer.Exit(EXIT_FAILED)
    out.print(
        f"✓ {dossier}: every file matches the signed SHA256SUMS, every signature verifies "
        f"with key {fingerprint(key)}, the ledger chain ends at the signed head",
        markup=False,
    )
