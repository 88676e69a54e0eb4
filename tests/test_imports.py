"""The pipeline runs one way: the import graph has no cycle, the model imports no stage or view,
every module imports on its own, and importing capana (or its pytest plugin) loads nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "capana"


def module_name(path: Path) -> str:
    parts = ("capana", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


MODULES = sorted(module_name(path) for path in PACKAGE.rglob("*.py"))


def imports_of(module: str) -> set[str]:
    """The capana modules ``module`` imports anywhere in its body (lazy imports included)."""
    relative = module.removeprefix("capana").lstrip(".").replace(".", "/")
    path = PACKAGE / relative if relative else PACKAGE
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("capana"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("capana")}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if module in trail:
            pytest.fail("import cycle: " + " -> ".join((*trail[trail.index(module) :], module)))
        if module in done:
            return
        for imported in GRAPH[module]:
            if imported != "capana":  # the package facade only re-exports, lazily
                visit(imported, (*trail, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())


def test_the_model_imports_only_the_model() -> None:
    for module in MODULES:
        if module.startswith("capana.model"):
            assert all(name.startswith("capana.model") for name in GRAPH[module]), module


def test_no_stage_imports_a_view() -> None:
    views = {m for m in MODULES if m.startswith("capana.views") or m == "capana.notebook"}
    consumers = views | {"capana", "capana.cli", "capana.__main__", "capana.pytest_plugin"}
    for module in set(MODULES) - consumers:
        assert not GRAPH[module] & views, f"{module} imports a view: {GRAPH[module] & views}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "capana.__main__"])
def test_each_module_imports_alone(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)


def test_importing_capana_or_its_plugin_loads_nothing_else() -> None:
    code = (
        "import sys, pytest; import capana, capana.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('capana', 'cryptography'))))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "['capana', 'capana.pytest_plugin']"
