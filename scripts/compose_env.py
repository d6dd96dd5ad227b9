"""`make compose-env`: the secrets and key files docker-compose.yaml needs, none committed.

Writes ``.env`` (fresh random values: Fernet key, JWT secret, API secret key, database
passwords, the admin password, the S3 keys and the master age identity), a CA and the S3
server's certificate under ``deploy/tls/``, and the SFTP server's host key and Airflow's login
key under ``deploy/sftp/``. Run again, it keeps every value and file that is already there (a
new master key would orphan every archive, a new Fernet key every stored connection) and only
adds what is missing; values derived from files (the pinned SFTP host key) follow the files.

    python scripts/compose_env.py [--root DIR]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
S3_NAMES = ("s3", "localhost")  # the S3 service's name on the compose network, and for a port
CERT_DAYS = 825


def _random() -> str:
    return secrets.token_hex(32)


def _master_key() -> str:
    import pyrage

    return str(pyrage.x25519.Identity.generate())


GENERATED = {  # .env name -> how to make a fresh value
    "AIRFLOW__CORE__FERNET_KEY": lambda: Fernet.generate_key().decode(),
    "AIRFLOW__API_AUTH__JWT_SECRET": _random,
    "AIRFLOW__API__SECRET_KEY": _random,
    "POSTGRES_PASSWORD": _random,
    "RETIREMENT_DB_PASSWORD": _random,
    "_AIRFLOW_WWW_USER_PASSWORD": _random,  # hex: never starts with "-" (an option to the CLI)
    "S3_ACCESS_KEY": lambda: "retirement-" + secrets.token_hex(8),
    "S3_SECRET_KEY": _random,
    "RETIREMENT_MASTER_KEY": _master_key,
}


def _write_private(path: Path, data: bytes, owner: int | None) -> None:
    """A new file only its owner can read (never replaces an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if owner is not None:
        os.chown(path, owner, 0)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(folder: Path) -> None:
    """A CA (its key is not kept) and the S3 server's certificate for its compose names."""
    if (folder / "s3.crt").exists() and (folder / "s3.key").exists():
        return
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("retirement stack CA"))
        .issuer_name(_name("retirement stack CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in S3_NAMES]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(S3_NAMES[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in ("ca.crt", "s3.crt", "s3.key"):  # a half-written set is made anew
        (folder / leftover).unlink(missing_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "s3.crt").write_bytes(cert.public_bytes(pem))
    private = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(folder / "s3.key", private, None)


def make_ssh_key(path: Path, comment: str, owner: int | None) -> str:
    """An Ed25519 key pair in OpenSSH format (kept if there); return the public line."""
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        _write_private(path, private, owner)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path.with_name(path.name + ".pub").write_text(f"{public.decode()} {comment}\n")
    return path.with_name(path.name + ".pub").read_text().strip()


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                name, value = line.split("=", 1)
                values[name.strip()] = value.strip()
    return values


def airflow_uid() -> int:
    """The host user the Airflow containers run as (the image's 50000 when that is root)."""
    return os.getuid() or 50000


def compose_env(root: Path) -> dict[str, str]:
    """Write whatever is missing under ``root``; return the .env values."""
    uid = airflow_uid()
    owner = uid if os.getuid() == 0 else None
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("config", "logs", "retirement-output"):  # else Docker makes them as root
        (root / folder).mkdir(exist_ok=True)
        if owner is not None:
            os.chown(root / folder, owner, 0)
    make_tls(root / "deploy" / "tls")
    sftp = root / "deploy" / "sftp"
    host_key = make_ssh_key(sftp / "ssh_host_ed25519_key", "retirement-sftp", None)
    client_key = make_ssh_key(sftp / "airflow_client_key", "airflow@retirement", owner)
    (sftp / "authorized_keys").write_text(client_key + "\n")

    env_path = root / ".env"
    values = read_env(env_path)
    values.setdefault("AIRFLOW_UID", str(uid))
    values.setdefault("_AIRFLOW_WWW_USER_USERNAME", "admin")
    for name, make in GENERATED.items():
        if not values.get(name):
            values[name] = make()
    values["SFTP_HOST_KEY"] = host_key.split()[1]  # the pinned key: always the file's
    lines = ["# Written by `make compose-env`: secrets for docker-compose.yaml. Never commit it."]
    lines += [f"{name}={value}" for name, value in values.items()]
    text = "\n".join(lines) + "\n"
    tmp = env_path.with_name(".env.tmp")
    tmp.unlink(missing_ok=True)
    _write_private(tmp, text.encode(), None)
    tmp.replace(env_path)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder")
    root = parser.parse_args().root
    values = compose_env(root)
    print(f"{root / '.env'}: {len(values)} values; TLS in deploy/tls, SSH keys in deploy/sftp")
    print(f"Airflow UI user: {values['_AIRFLOW_WWW_USER_USERNAME']} (password in .env)")


if __name__ == "__main__":
    main()
