"""`make demo` for real, and the runbook checked against what its commands print.

Runs ``scripts/demo.sh`` (what ``make demo SCENARIO=…`` runs: plan check, a generated demo
company, ``airflow dags test`` of the demo DAG, ledger verification, the summary) for each
scenario. On the deregistration demo's output it then runs every ``$ retirement …`` command
of docs/runbook.md (and the wrong plan it shows) and compares what they print with the
runbook's text, with paths, hex digests and numbers masked: the wording, the marks and the
shape of every line must match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.markdown import fenced_blocks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
RETIREMENT = Path(sys.executable).parent / "retirement"


def _run(argv: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _demo(scenario: str, out: Path) -> str:
    env = {**os.environ, "DEMO_OUTPUT": str(out)}
    for var in [v for v in env if v.startswith(("AIRFLOW", "RETIREMENT_"))]:
        env.pop(var)  # the demo sets up its own Airflow home and connections
    done = _run(["scripts/demo.sh", scenario], env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _summary(stdout: str) -> dict[str, list[int]]:
    """The demo's 'Rows by class and disposition' table: (class, disposition) -> numbers."""
    table = stdout.split("Rows by class and disposition\n", 1)[1].splitlines()[1:]
    rows = {}
    for line in table:
        parts = line.split()
        if not parts or not parts[-1].isdigit():
            break
        numbers = [int(p) for p in parts if p.isdigit()]
        rows[" ".join(p for p in parts if not p.isdigit())] = numbers
    return rows


@pytest.fixture(scope="module")
def deregistration(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    return out, _demo("deregistration", out)


@pytest.mark.parametrize("scenario", ["change", "transfer_liquidation"])
def test_make_demo_runs_the_other_scenarios(scenario: str, tmp_path: Path) -> None:
    stdout = _demo(scenario, tmp_path / "out")
    summary = _summary(stdout)
    datasets, backed_up, delivered, _deleted, archived = summary["all"]
    assert datasets == sum(v[0] for k, v in summary.items() if k != "all") > 0
    assert backed_up > 0
    assert delivered <= backed_up
    assert archived <= delivered
    assert "(audited: retirement audit" in stdout
    _verify_sh(tmp_path / "out", stdout)


def _verify_sh(out: Path, stdout: str) -> None:
    """The independent verifier shipped in the dossier (sha256sum, openssl, age, zstd and
    a POSIX shell) accepts it with the fingerprint make demo printed, and the archives."""
    (printed,) = re.findall(r"signing key fingerprint .*: (SHA256:[0-9a-f]{64})", stdout)
    assert printed == _fingerprint(out)
    (dossier,) = re.findall(r"dossier: +(\S+)index\.html", stdout)
    done = subprocess.run(
        ["sh", "verify.sh", "--key-fingerprint", printed, "--archives", str(out / "vault")],
        cwd=dossier,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr
    assert "warn" not in (done.stdout + done.stderr).lower()


def test_make_demo_prints_the_summary_and_the_dossier(deregistration: tuple[Path, str]) -> None:
    out, stdout = deregistration
    summary = _summary(stdout)
    assert set(summary) >= {"general erase", "sensitive hand_over", "all"}
    datasets, backed_up, delivered, deleted, archived = summary["all"]
    assert datasets == sum(v[0] for k, v in summary.items() if k != "all")
    assert deleted == backed_up  # deregistration: everything backed up goes at the source
    assert 0 < archived < delivered < backed_up
    assert re.search(r"certificates of sanitization: (\d+)", stdout).group(1) == str(datasets)
    (dossier,) = re.findall(r"dossier: +(\S+)index\.html", stdout)
    assert Path(dossier, "dossier.pdf").exists()
    assert dossier.startswith(str(out))
    _verify_sh(out, stdout)


def test_the_successor_decrypts_what_the_demo_delivered_with_age(
    deregistration: tuple[Path, str],
) -> None:
    """docs/backup.md's `age -d -i successor.key FILE | zstd -d`, run as written on the demo."""
    out, stdout = deregistration
    key = out / "recipient" / "successor.key"
    assert f"age -d -i {key} FILE.age" in stdout
    delivered = sorted((out / "successor").rglob("*.csv.zst.age"))
    assert delivered
    for path in delivered:
        plain = subprocess.run(
            f"age -d -i '{key}' '{path}' | zstd -d",
            shell=True,
            capture_output=True,
            check=True,
        ).stdout
        assert plain.startswith(b'"'), path  # the CSV's quoted header row


# ---------------------------------------------------------------- the runbook


def _runbook_blocks() -> list[tuple[str, list[str]]]:
    """(command, output lines) of every shown command; the wrong plan's output has no
    command line in the runbook: it is listed as ``retirement plan check <bad plan>``."""
    text = (ROOT / "docs" / "runbook.md").read_text()
    shown: list[tuple[str, list[str]]] = []
    for _language, block in fenced_blocks(text):
        lines = block.rstrip("\n").splitlines()
        if lines[0].startswith("✗ /tmp/bad.yaml"):
            shown.append(("$ retirement plan check <bad plan>", lines))
            continue
        first = len(shown)  # a command's output is in its own block
        for line in lines:
            if line.startswith("$ retirement "):
                shown.append((line, []))
            elif len(shown) > first and line.startswith(("✓", "✗", " ")):
                shown[-1][1].append(line)
    return shown


def _mask(line: str) -> str:
    line = re.sub(r"\S*/\S*", "<path>", line)  # paths differ per machine and run
    line = re.sub(r"\b[0-9a-f]{8,}…?", "<hex>", line)
    return re.sub(r"\d+", "<n>", line)


def _fingerprint(out: Path) -> str:
    """The signing key's fingerprint as an auditor computes it from the published key."""
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(out / "keys/signing.pub.pem"), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def _command_key(command: str) -> str:
    words = command.split()[2:]  # after "$ retirement"
    if words[:2] == ["plan", "check"]:
        return "plan check (wrong plan)" if "<bad" in command else "plan check"
    if words[:2] == ["ledger", "verify"]:
        return "ledger verify"
    if words[0] == "restore":
        return "restore (with a reason)" if "--reason" in command else "restore (no reason)"
    return words[0]


def test_every_runbook_command_prints_what_the_runbook_shows(
    deregistration: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = deregistration
    keys = ["--key-store", str(out / "keys"), "--master-key-file", str(out / "keys/master.key")]
    ledger = ["--ledger", f"sqlite:///{out / 'ledger.sqlite'}"]
    (invoices,) = (out / "vault").glob("demo/crm.invoices/*.manifest.json")
    certificates = (out / "certificates").glob("*/cos-*.json")
    customers = next(
        c for c in certificates if json.loads(c.read_text())["target"]["dataset"] == "crm.customers"
    )
    (dossier,) = (out / "dossier").glob("*/")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "include/plans/demo.yaml")
        .read_text()
        .replace("destinations: [successor_drop]", "destinations: [sucessor_drop]", 1)
    )
    restore = ["restore", str(invoices), "--to", str(tmp_path / "restore"), *keys, *ledger]
    runs = {
        "plan check": ["plan", "check", "include/plans/demo.yaml"],
        "plan check (wrong plan)": ["plan", "check", str(bad)],
        "verify-backup": ["verify-backup", str(invoices), *keys],
        "restore (no reason)": restore,
        "restore (with a reason)": [*restore, "--reason", "tax audit 2027-031"],
        "ledger verify": ["ledger", "verify", *ledger],
        "verify-certificate": [
            "verify-certificate",
            str(customers),
            "--public-key",
            str(out / "keys/signing.pub.pem"),
            *ledger,
        ],
        "audit": ["audit", f"{dossier}/", "--key-fingerprint", _fingerprint(out)],
    }
    shown = _runbook_blocks()
    assert sorted(_command_key(c) for c, _ in shown) == sorted(runs), "runbook vs this test"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETIREMENT_")}
    for command, expected in shown:
        argv = runs[_command_key(command)]
        done = _run([str(RETIREMENT), *argv], env, timeout=120)
        printed = (done.stdout + done.stderr).strip().splitlines()
        assert [_mask(x) for x in printed] == [_mask(x) for x in expected], (
            f"{command}\nrunbook:\n" + "\n".join(expected) + "\nprinted:\n" + "\n".join(printed)
        )
        assert (done.returncode == 0) == expected[0].startswith("✓"), command
    shutil.rmtree(tmp_path / "restore", ignore_errors=True)
