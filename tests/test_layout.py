"""The package's layout: stages of the flow that import only the stages below them, and no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "harness"

# What each stage may import of the others (docs/design.md, "Modules"). A stage's modules import
# each other freely, without cycles.
MAY_IMPORT: dict[str, set[str]] = {
    "config": set(),
    "model": {"config"},
    "protocols": {"config", "model"},
    "measure": {"config", "model"},
    "output": {"config", "measure"},
    "ui": {"config", "measure", "model"},
    "load": {"config", "model", "protocols", "measure"},
    "server": {"config", "model", "protocols"},
    "run": {"config", "model", "protocols", "load", "measure", "output", "ui"},
    "hooks": {"config", "protocols", "load", "measure", "ui", "run"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(module: str) -> Iterator[str]:
    """Every harness module `module` imports anywhere in its text: at the top, in functions, under TYPE_CHECKING."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names
                        if f"{node.module}.{alias.name}" in MODULES)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "harness")


def _stage(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_module_belongs_to_a_stage() -> None:
    assert {_stage(module) for module in MODULES if module != "harness"} == set(MAY_IMPORT)


def test_each_stage_imports_only_the_stages_below_it() -> None:
    reaching_up = sorted(f"{module} imports {imported}" for module in MODULES for imported in _imports(module)
                         if imported in MODULES and imported != "harness"
                         and _stage(imported) != _stage(module) and _stage(imported) not in MAY_IMPORT[_stage(module)])
    assert reaching_up == []


def test_no_module_imports_itself_through_others() -> None:
    graph = {module: {imported for imported in _imports(module) if imported in MODULES} for module in MODULES}
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join([*path[path.index(module):], module]))
            return
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


def _loaded_after_importing(*modules: str) -> set[str]:
    """Every module a fresh interpreter holds after importing `modules`."""
    code = "import sys\n" + "".join(f"import {module}\n" for module in modules) + "print(*sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    return set(done.stdout.split())


def _packages(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}


def test_the_fleet_model_and_its_simulation_run_without_gevent_or_locust() -> None:
    model = sorted(module for module in MODULES if _stage(module) in {"config", "model"})
    assert _packages(_loaded_after_importing(*model)) & {"gevent", "locust", "hdrh", "matplotlib"} == set()


def test_the_reference_server_stands_alone_without_the_load_side() -> None:
    loaded = _loaded_after_importing(*sorted(module for module in MODULES if _stage(module) == "server"))
    assert _packages(loaded) & {"locust", "matplotlib"} == set()
    assert {module for module in loaded if _stage(module) in {"load", "measure", "run", "hooks", "ui"}
            and module.startswith("harness.")} == set()


def test_workers_and_the_server_never_load_matplotlib() -> None:
    """Only drawing a report loads matplotlib, so no worker or server process pays for it or sets its backend."""
    assert "matplotlib" not in _packages(_loaded_after_importing("harness.hooks", "harness.run", "harness.server.app"))
