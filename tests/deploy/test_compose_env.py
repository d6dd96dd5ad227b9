"""`make compose-env`: fresh random secrets and key files for the stack, kept on a re-run,
never committed."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pyrage
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from tests.deploy.compose import ROOT, compose_config, generate_env
from tests.deploy.test_compose import REQUIRED

SECRET_FILES = [
    "deploy/tls/s3.key",
    "deploy/sftp/ssh_host_ed25519_key",
    "deploy/sftp/airflow_client_key",
    ".env",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "project"


def test_make_compose_env_runs_the_script() -> None:
    dry = subprocess.run(
        ["make", "-n", "compose-env"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert ".venv/bin/python scripts/compose_env.py" in dry.stdout


def test_every_secret_and_file_the_stack_needs(root: Path) -> None:
    env = generate_env(root)
    assert set(REQUIRED) <= set(env)
    Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())  # a valid key
    for name in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "POSTGRES_PASSWORD",
        "RETIREMENT_DB_PASSWORD",
        "_AIRFLOW_WWW_USER_PASSWORD",
        "S3_SECRET_KEY",
    ):
        # long, and safe as a CLI argument, in a URL and in JSON
        assert re.fullmatch(r"[0-9a-f]{64}", env[name]), name
    identity = pyrage.x25519.Identity.from_str(env["RETIREMENT_MASTER_KEY"])
    sealed = pyrage.encrypt(b"archive key", [identity.to_public()])
    assert pyrage.decrypt(sealed, [identity]) == b"archive key"
    for name in SECRET_FILES:
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o600, name
    host = load_ssh_private_key((root / "deploy/sftp/ssh_host_ed25519_key").read_bytes(), None)
    public = (root / "deploy/sftp/ssh_host_ed25519_key.pub").read_text().split()
    assert public[1] == env["SFTP_HOST_KEY"]
    assert host.public_key() is not None
    client = (root / "deploy/sftp/airflow_client_key.pub").read_text().split()[:2]
    assert (root / "deploy/sftp/authorized_keys").read_text().split()[:2] == client
    ca = x509.load_pem_x509_certificate((root / "deploy/tls/ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((root / "deploy/tls/s3.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "s3" in names.get_values_for_type(x509.DNSName)  # the service's name on the network
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    for folder in ("config", "logs", "retirement-output"):
        assert (root / folder).is_dir()


def test_a_rerun_keeps_everything(root: Path) -> None:
    first = generate_env(root)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    (root / ".env").write_text(
        (root / ".env").read_text().replace(f"S3_SECRET_KEY={first['S3_SECRET_KEY']}\n", "")
    )
    second = generate_env(root)
    assert {k: v for k, v in second.items() if k != "S3_SECRET_KEY"} == {
        k: v for k, v in first.items() if k != "S3_SECRET_KEY"
    }
    assert second["S3_SECRET_KEY"]  # a missing value is added
    for path, data in files.items():
        if path.name != ".env":
            assert path.read_bytes() == data, path
    assert compose_config(second)["services"]  # the stack accepts what it wrote


def test_two_runs_make_different_secrets(tmp_path: Path) -> None:
    a, b = generate_env(tmp_path / "a"), generate_env(tmp_path / "b")
    for name in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "RETIREMENT_MASTER_KEY",
        "SFTP_HOST_KEY",
    ):
        assert a[name] != b[name]


@pytest.mark.parametrize(
    "path", [*SECRET_FILES, "deploy/tls/ca.crt", "config/airflow.cfg", "retirement-output/x"]
)
def test_never_committed(path: str) -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
