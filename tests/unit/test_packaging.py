"""pyproject.toml declares what the code needs as ranges; requirements.txt is the tested lock.
The lock satisfies every declared range, every third-party module the pipeline imports is
declared, and what only the tests use stays out of the runtime lock."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_the_lock_satisfies_every_declared_range() -> None:
    pins = _pins(ROOT / "requirements.txt")
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is declared but not pinned in requirements.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req}"
        for extra in req.extras:  # psycopg[binary] -> psycopg-binary, airflow[celery] -> celery
            assert canonicalize_name(f"{name}-{extra}") in pins or extra in pins, (req, extra)


def _imported(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_module_the_pipeline_imports_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in _declared()}
    provided = packages_distributions()
    ours = {"retirement", "retirement_airflow", "_typeshed"}
    for module in sorted(_imported(ROOT / "include") - ours - set(sys.stdlib_module_names)):
        dists = {canonicalize_name(d) for d in provided.get(module, [])}
        assert dists & declared, f"{module} (from {sorted(dists)}) is not in pyproject's deps"


def test_what_only_the_tests_use_is_not_a_runtime_pin() -> None:
    runtime, dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    for name in ("python-stdnum", "phonenumbers"):
        assert name not in runtime
        assert name in dev
    used = _imported(ROOT / "include") | _imported(ROOT / "dags") | _imported(ROOT / "plugins")
    assert not used & {"stdnum", "phonenumbers"}
