"""The library's shape, checked without any script: no function in include/ over 60 lines, no
file over 400, include/retirement never imports Airflow, and no import cycle among its modules
(module-level imports; those under ``if TYPE_CHECKING:`` and inside functions do not run at
import time and are not counted).

Each checker takes the folder it reads, so the tests at the bottom show it finds what it
looks for in a small tree made for the purpose."""

from __future__ import annotations

import ast
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``*.py`` under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``file:function`` -> its lines, for each function of more than ``limit`` lines, counted
    from its ``def`` line to its last line (decorators not counted)."""
    long = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    long[f"{path.relative_to(root).as_posix()}:{node.name}"] = lines
    return long


def long_files(root: Path, limit: int = MAX_FILE_LINES) -> list[str]:
    long = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            long.append(f"{path.relative_to(root).as_posix()} ({lines} lines)")
    return long


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The modules an import statement names, absolute (``from a import b`` names ``a`` and,
    if it is one, the module ``a.b``: the caller keeps only names that are modules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: at top level and in top-level ``if``,
    ``try`` and ``with`` blocks, but not under ``if TYPE_CHECKING:`` (its ``else`` runs)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            found.append(stmt)
        elif isinstance(stmt, ast.If):
            if not _is_type_checking(stmt.test):
                found += _module_level_imports(stmt.body)
            found += _module_level_imports(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                found += _module_level_imports(block)
        elif isinstance(stmt, ast.With):
            found += _module_level_imports(stmt.body)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` (under ``root``) it imports at import time.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so those count too."""
    modules = {name: path for name, path in _modules(root).items() if name.split(".")[0] == package}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in _module_level_imports(tree.body):
            for target in _imported(node, name, path.name == "__init__.py"):
                parts = target.split(".")
                edges.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        graph[name] = {target for target in edges & set(modules) if target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def airflow_imports(root: Path) -> list[str]:
    """``file:line`` of every import of airflow anywhere in a file (inside functions too)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if any(name == "airflow" or name.startswith("airflow.") for name in names):
                found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


# ---------------------------------------------------------------------------- the library


def test_no_function_over_60_lines() -> None:
    assert long_functions(INCLUDE) == {}


def test_no_file_over_400_lines() -> None:
    assert long_files(INCLUDE) == []


def test_the_library_never_imports_airflow() -> None:
    assert airflow_imports(INCLUDE / "retirement") == []


def test_no_import_cycle_in_the_library() -> None:
    graph = import_graph(INCLUDE, "retirement")
    assert "retirement.cli.root" in graph  # the walk found the library
    assert cycles(graph) == []


# ---------------------------------------------------------------------------- the checkers


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_cycle_is_found_and_type_checking_imports_are_not(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "from .c import thing\n",
            "pkg/c.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
            "pkg/d.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import e\n"
                "def f():\n    from pkg import e\n"
            ),
            "pkg/e.py": "import pkg.d\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.a"] == {"pkg", "pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.c"}  # a relative import resolved
    assert graph["pkg.d"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_package_importing_its_module_back_is_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"pkg/__init__.py": "from pkg.a import x\n", "pkg/a.py": "import pkg\n"})
    assert cycles(import_graph(root, "pkg")) == [["pkg", "pkg.a"]]


def test_long_functions_and_files_are_found(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    root = _tree(
        tmp_path,
        {
            "m.py": f"@decorator\ndef long():\n{body}\ndef short():\n    pass\n",
            "n.py": "def fits():\n" + body[: -len("    x59 = 59\n")],
        },
    )
    assert long_functions(root) == {"m.py:long": 61}
    assert long_files(root, limit=64) == ["m.py (65 lines)"]


def test_an_airflow_import_is_found_anywhere(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "a.py": "def f():\n    from airflow.sdk import task\n",
            "b.py": "import airflowish\nfrom .airflow import x\n",
            "c.py": "import os, airflow\n",
        },
    )
    assert airflow_imports(root) == ["a.py:2", "c.py:1"]
