"""The `retirement` command, in process: output, exit codes 0 / 1 / 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from retirement.cli import app
from retirement.ledger import Ledger

PLANS = Path(__file__).resolve().parents[2] / "include" / "plans"
runner = CliRunner()


def test_plan_check_accepts_the_shipped_plans() -> None:
    result = runner.invoke(app, ["plan", "check", *map(str, sorted(PLANS.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == len(list(PLANS.glob("*.yaml")))
    assert "DAG retire__demo" in result.output


def test_plan_check_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PLANS / "demo.yaml").read_text().replace("years: 30", "years: -1"))
    good = PLANS / "demo.yaml"
    result = runner.invoke(app, ["plan", "check", str(good), str(bad)])
    assert result.exit_code == 1
    line = (PLANS / "demo.yaml").read_text().splitlines().index("      years: 30") + 1
    assert f"{bad}:{line}: dispositions.accounting_archive.retention.years" in result.output
    assert "✓" in result.output  # the good plan is still reported


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["plan", "check"]).exit_code == 2
    assert (
        runner.invoke(app, ["ledger", "verify"], env={"RETIREMENT_LEDGER_URL": ""}).exit_code == 2
    )
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_ledger_verify_ok_and_broken(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    ledger = Ledger.open(url)
    for i in range(3):
        ledger.append("step", actor="t", payload={"i": i})
    head = ledger.head()
    result = runner.invoke(app, ["ledger", "verify", "--ledger", url])
    assert result.exit_code == 0, result.output
    assert f"3 events, chain head {head}" in result.output
    assert (
        runner.invoke(app, ["ledger", "verify", "--ledger", url, "--expect-head", head]).exit_code
        == 0
    )
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET actor = 'x' WHERE seq = 2"))
    ledger.close()
    result = runner.invoke(app, ["ledger", "verify", "--ledger", url])
    assert result.exit_code == 1
    assert "event 2" in result.output


def test_ledger_verify_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ledger", "verify", "--ledger", f"sqlite:///{tmp_path}/none.sqlite"]
    )
    assert result.exit_code == 1
    assert "no ledger file" in result.output


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "retirement"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "plan" in done.stdout
    assert "ledger" in done.stdout
