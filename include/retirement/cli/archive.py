"""The `retirement` commands for archives and evidence: verify and restore backups, verify
certificates, audit closure dossiers. Registered on ``retirement.cli.app`` when
``retirement.cli.root`` imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retirement.cli.app import EXIT_FAILED, app, err, out
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
    manifest: ManifestArg,
    key_store: KeyStoreOpt = None,
    master_key_file: MasterOpt = None,
    identity: IdentityOpt = None,
    public_key: PublicKeyOpt = None,
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
