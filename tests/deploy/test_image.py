"""The Dockerfile: linted with hadolint (installed by `make install-dev`), its Debian packages
equal to what scripts/system-deps.sh installs natively, and everything baked in."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.compose import ROOT
from tests.e2e.native import image_files

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = ["Dockerfile", "deploy/s3/Dockerfile", "deploy/sftp/Dockerfile"]


def _stages() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return text.split("\nFROM ")[1:]


def _apt_installed(stage: str) -> set[str]:
    packages: set[str] = set()
    for line in stage.splitlines():
        for command in line.split("&&"):
            words = shlex.split(command.replace("RUN ", " "))
            if words[:2] == ["apt-get", "install"]:
                packages |= {w.split("=")[0] for w in words[2:] if not w.startswith("-")}
    return packages


def _system_deps(name: str) -> set[str]:
    listed = subprocess.run(
        [str(ROOT / "scripts" / "system-deps.sh"), "list", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.split())


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint(dockerfile: str) -> None:
    done = subprocess.run(
        [str(HADOLINT), dockerfile], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3015" in done.stdout  # --no-install-recommends missing


def test_the_build_stage_installs_the_native_build_list() -> None:
    wheels, _ = _stages()
    assert wheels.startswith("apache/airflow:3.3.2-python3.11 AS wheels")
    assert _apt_installed(wheels) == _system_deps("build")


def test_the_image_installs_the_native_runtime_list() -> None:
    _, image = _stages()
    assert image.startswith("apache/airflow:3.3.2-python3.11\n")
    runtime = _system_deps("runtime")
    assert _apt_installed(image) == runtime
    # what the dossier's PDF and a by-hand backup check need (pip cannot install these)
    assert {"libpango-1.0-0", "fonts-wqy-microhei", "age", "zstd", "openssh-client"} <= runtime


def test_the_native_lists_are_what_make_demo_and_make_test_check() -> None:
    script = (ROOT / "scripts" / "system-deps.sh").read_text()
    assert 'demo) wanted=("${build[@]}" "${runtime[@]}")' in script
    assert 'test) wanted=("${build[@]}" "${runtime[@]}" "${servers[@]}")' in script


def test_everything_is_baked_in() -> None:
    _, image = _stages()
    files = image_files()
    assert files["/opt/airflow/dags"] == ROOT / "dags"
    assert files["/opt/airflow/plugins"] == ROOT / "plugins"
    assert files["/opt/retirement/src/include"] == ROOT / "include"
    assert files["/opt/retirement/src/requirements.txt"] == ROOT / "requirements.txt"
    assert files["/opt/retirement/init.sh"] == ROOT / "deploy" / "airflow" / "init.sh"
    assert re.search(r"pip install --no-cache-dir --no-index --find-links \S+\s+-r ", image)
    assert "pip install --no-cache-dir --no-deps /opt/retirement/src" in image
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (ROOT / "Dockerfile").read_text()


def test_secrets_stay_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", "deploy", "!deploy/airflow", "config", "logs", "retirement-output"):
        assert entry in ignored
