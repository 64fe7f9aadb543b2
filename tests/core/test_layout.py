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
