"""The package layout's promises: the core knows no model and no framework; no import cycles;
nothing outside `shared/` imports a private module of it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
FRAMEWORKS = (
    "flax",
    "haiku",
    "equinox",
    "keras",
    "impl_flax",
    "impl_haiku",
    "impl_equinox",
    "impl_keras",
)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.add(name)
    return out


def test_the_core_names_no_model_and_imports_no_model_and_no_framework():
    for path in (SHARED / "core").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"mlp-bn|mlp_bn|bias-adder|bias_adder", text), path
        for name in _imports(path):
            assert not name.startswith("shared.") or name.startswith("shared.core"), (path, name)
            assert name.split(".")[0] not in FRAMEWORKS, (path, name)


def test_no_import_cycles_between_shared_subpackages():
    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:3]) if parts[1:2] == ["models"] else ".".join(parts[:2])

    graph: dict[str, set[str]] = {}
    for path in SHARED.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        src = unit(module)
        for name in _imports(path):
            if name.startswith("shared.") and unit(name) != src:
                graph.setdefault(src, set()).add(unit(name))
    # `shared/__init__` is the public face: the subpackages import it only for re-exports of
    # the core, so edges into "shared.__init__" are those of the core itself.
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*stack, node])}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*stack, node])
        seen[node] = 2

    for node in sorted(graph):
        visit(node, [])
    assert {"shared.cli", "shared.models.bias_adder", "shared.docs"} <= set(graph)


def test_nothing_outside_shared_imports_a_private_shared_module():
    for folder in ("impl_flax", "impl_haiku", "impl_equinox", "impl_keras", "tests", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in _imports(path):
                private = [p for p in name.split(".")[1:] if p.startswith("_")]
                if name.startswith("shared"):
                    assert not private or path.parts[-3:-1] == ("tests", "docs"), (path, name)


MAX_LINES = 450
"""The longest a module may be (issue 27: small modules)."""
BEING_SPLIT = {"shared/core/_parallel.py"}
"""The engine's module the compare pipeline's rewrite (issue 27) brings under `MAX_LINES`."""


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that `path` imports at run time (not under `TYPE_CHECKING`);
    `from . import name` counts as an import of the submodule `name` where there is one."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
            if not node.level:
                module = node.module or ""
            names = [module]
            names += [f"{module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in modules:
                out.add(name)
    return out


def test_no_import_cycles_between_modules_of_shared():
    paths = {}
    for path in SHARED.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        paths[module.removesuffix(".__init__")] = path
    graph = {m: _module_imports(p, set(paths)) - {m} for m, p in paths.items()}
    # A package's __init__ re-exports its modules: an edge from a module into its own
    # package (`from . import _x` resolved above) is no cycle of two modules.
    graph = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        if seen.get(node) == 1:
            cycle = [*stack[stack.index(node) :], node]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*stack, node])
        seen[node] = 2

    for node in sorted(graph):
        visit(node, [])
    # The checkpoint commands used to import the transplant module, which imported them back.
    assert "shared.checkpoint._transplant" in graph["shared.checkpoint._cli"]


def test_no_module_of_shared_is_over_the_line_limit():
    long = {
        str(path.relative_to(ROOT)): n
        for path in SHARED.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert set(long) <= BEING_SPLIT, long
    assert len((SHARED / "cli.py").read_text().splitlines()) <= 150
