"""The package layout's promises: the core knows no model and no framework; no import cycles;
nothing outside `shared/` imports a private module of it.

The guards read the source with `ast`, so that they see every form of import: `import a.b`
(also `as r`), `from a import b` (which may import the module `a.b`), relative imports, and a
module named by a string literal to `importlib.import_module`, `__import__` or a fork
server's preload list; and every dotted name reached through an imported module
(`shared.core._x.f`). Each guard is a function of the files it reads, so that the tests can
plant what it must catch in a copy and see it caught.
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import shared

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"
IMPL_PACKAGES = sorted(p.name for p in ROOT.glob("impl_*") if (p / "__init__.py").is_file())
OUTSIDE_SHARED = (*IMPL_PACKAGES, "tests", "examples")
"""The folders whose Python files may use only `shared`'s public API."""
NAMED_IMPORTS = {"import_module", "__import__", "set_forkserver_preload"}
"""Calls that import the modules their string arguments name."""


def _package(path: Path, root: Path) -> list[str]:
    """The dotted package `path` sits in, relative to `root` (what `from .` means there)."""
    return list(path.relative_to(root).with_suffix("").parts[:-1])


def _resolve(module: str | None, level: int, package: list[str]) -> str:
    """An import's absolute module name: `from ..a import b` in package `p.q.r` is `p.q.a`."""
    if not level:
        return module or ""
    base = package[: len(package) - level + 1]
    return ".".join([*base, module] if module else base)


def _strings(node: ast.expr) -> Iterator[str]:
    """The string constants of a call argument (a string, or a list or tuple of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            yield from _strings(element)


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as `["a", "b", "c"]`; `None` for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def imported_names(path: Path, root: Path = ROOT, *, runtime_only: bool = False) -> set[str]:
    """Every dotted name `path` imports or reaches through an imported module.

    `from a import b` gives both `a` and `a.b` (`b` may be a module); `import a.b as r` and
    `from a import b as r`, then `r.c`, give `a.b.c`. With `runtime_only`, imports under
    `if TYPE_CHECKING:` are left out (they never run, so they make no cycle).
    """
    tree = ast.parse(path.read_text())
    package = _package(path, root)
    skipped = set()
    if runtime_only:
        skipped = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
    names: set[str] = set()
    aliases: dict[str, str] = {}  # a local name -> the module or object it is bound to
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node.module, node.level, package)
            names.add(module)
            for alias in node.names:
                if alias.name != "*":
                    names.add(f"{module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Call):
            callee = _dotted(node.func)
            if callee and callee[-1] in NAMED_IMPORTS and node.args:
                for text in _strings(node.args[0]):
                    level = len(text) - len(text.lstrip("."))
                    names.add(_resolve(text[level:] or None, level, package))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in skipped:
            parts = _dotted(node)
            if parts and parts[0] in aliases:
                names.add(".".join([aliases[parts[0]], *parts[1:]]))
    return names


def _python_files(root: Path, folders: Iterable[str]) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((root / folder).rglob("*.py"))


# --- the core knows no model and no framework ----------------------------------------------


def model_patterns() -> dict[str, re.Pattern[str]]:
    """Each registered model's name in any spelling (`mlp-bn`, `mlp_bn`, `MlpBn`, `mlp bn`)."""
    return {
        name: re.compile("[-_ ]?".join(map(re.escape, re.split(r"[-_]", name))), re.IGNORECASE)
        for name in shared.MODELS
    }


def framework_packages() -> set[str]:
    """The packages the registry's implementations live in, but `shared`'s own (`impl_flax`)."""
    modules = {
        factory.partition(":")[0].split(".")[0]
        for name in shared.MODELS
        for factory in shared.implementations(name).values()
    }
    return modules - {"shared"}


def framework_modules() -> set[str]:
    """The frameworks' own packages: `impl_X` wraps framework `X` (checked below), and both
    are out of the core's reach."""
    packages = framework_packages()
    return packages | {p.removeprefix("impl_") for p in packages}


def core_findings(core: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """What the core at `core` must not hold: a model's name, an import of a model or of
    anything in `shared` outside the core, an import of a framework."""
    patterns = model_patterns()
    frameworks = framework_modules()
    found = []
    for path in sorted(core.rglob("*.py")):
        where = str(path.relative_to(root))
        text = path.read_text()
        found += [(where, f"names {m}") for m, pattern in patterns.items() if pattern.search(text)]
        for name in sorted(imported_names(path, root)):
            if name.startswith("shared.") and not name.startswith("shared.core"):
                found.append((where, f"imports {name}"))
            if name.split(".")[0] in frameworks:
                found.append((where, f"imports {name}"))
    return found


def test_the_core_names_no_model_and_imports_no_model_and_no_framework():
    assert core_findings(SHARED / "core") == []


def test_the_framework_list_is_the_registrys_and_each_impl_package_imports_its_framework():
    assert framework_packages() == set(IMPL_PACKAGES)
    for package in framework_packages():
        imported = {
            name.split(".")[0]
            for path in (ROOT / package).rglob("*.py")
            for name in imported_names(path)
        }
        assert package.removeprefix("impl_") in imported, package


def test_a_model_name_is_seen_in_every_spelling():
    patterns = model_patterns()
    assert set(patterns) == set(shared.MODELS)
    for name, pattern in patterns.items():
        words = name.split("-")
        for spelled in (name, "_".join(words), " ".join(words), "".join(map(str.title, words))):
            assert pattern.search(f"the {spelled}'s run"), (name, spelled)
    assert not patterns["mlp-bn"].search("an MLP with BatchNorm")  # prose is not a name


CORE_MODULE = "shared/core/_compare.py"
"""The core module the tests plant into (a copy of it)."""


def _planted(tmp_path: Path, line: str) -> list[tuple[str, str]]:
    """The core guard's findings on a copy of the core with `line` added to one module."""
    root = tmp_path / "repo"
    shutil.copytree(SHARED / "core", root / "shared" / "core")
    assert core_findings(root / "shared" / "core", root) == []
    module = root / CORE_MODULE
    module.write_text(module.read_text() + "\n" + line + "\n")
    return core_findings(root / "shared" / "core", root)


@pytest.mark.parametrize("model", list(shared.MODELS))
def test_a_model_name_planted_in_the_core_is_caught(tmp_path, model):
    constant = model.replace("-", "_").upper()  # as a constant would spell it
    assert _planted(tmp_path, f"{constant}_STEPS = 10") == [(CORE_MODULE, f"names {model}")]


FRAMEWORK_IMPORTS = [
    "import {}",
    "import {}.nn as framework_nn",
    "from {} import nn",
    "importlib.import_module('{}')",
]


@pytest.mark.parametrize("form", FRAMEWORK_IMPORTS)
def test_a_framework_import_planted_in_the_core_is_caught(tmp_path, form):
    frameworks = sorted(framework_modules())
    # One line per framework in one copy of the core: each is found, and nothing else.
    found = _planted(tmp_path, "\n".join(form.format(f) for f in frameworks))
    named = {what.split(".")[0] for _, what in found}  # `from x import nn` may also name x.nn
    assert named == {f"imports {f}" for f in frameworks}, (form, found)


def test_an_import_of_shared_outside_the_core_planted_in_it_is_caught(tmp_path):
    found = _planted(tmp_path, "from .. import report as shown")
    assert (CORE_MODULE, "imports shared.report") in found


def docstring_findings(root: Path = ROOT) -> list[tuple[str, str]]:
    """Package docstrings (what a reader sees first) that name a model, outside the model's
    own package: a list of models goes stale with the next model, so none keeps one."""
    patterns = model_patterns()
    found = []
    for path in _python_files(root, ["shared", *IMPL_PACKAGES]):
        relpath = path.relative_to(root)
        a_models_own = relpath.parts[:2] == ("shared", "models") and len(relpath.parts) > 3
        if path.name != "__init__.py" or a_models_own:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        found += [(str(relpath), m) for m, pattern in patterns.items() if pattern.search(doc)]
    return found


def test_no_package_docstring_lists_the_models():
    assert docstring_findings() == []


def test_a_model_listed_in_a_package_docstring_is_caught(tmp_path):
    root = tmp_path / "repo"
    package = root / IMPL_PACKAGES[0]
    package.mkdir(parents=True)
    model = list(shared.MODELS)[-1]
    (package / "__init__.py").write_text(f'"""The {model.replace("-", " ")} and no other."""\n')
    assert docstring_findings(root) == [(f"{IMPL_PACKAGES[0]}/__init__.py", model)]


# --- nothing outside shared/ imports a private module of it ---------------------------------


def _private(name: str) -> bool:
    """`_x` is private; `__x__` (`__file__`, `__doc__`) is Python's, not the package's."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(root: Path = ROOT, folders: Iterable[str] = OUTSIDE_SHARED) -> list[tuple]:
    """`(file, name)` for every name of `shared` with a private part (`shared._x`,
    `shared.docs._generate`, `shared.core._f`) that a file under `folders` imports or reaches."""
    found = []
    for path in _python_files(root, folders):
        for name in sorted(imported_names(path, root)):
            parts = name.split(".")
            if parts[0] == "shared" and any(_private(p) for p in parts[1:]):
                found.append((str(path.relative_to(root)), name))
    return found


def test_nothing_outside_shared_imports_a_private_shared_module():
    assert private_imports() == []


PLANTED = {
    "import": ("import shared._registry", "shared._registry"),
    "import as": ("import shared.core._run as r", "shared.core._run"),
    "from package": ("from shared import _api", "shared._api"),
    "from subpackage": ("from shared.docs import _generate", "shared.docs._generate"),
    "from private module": ("from shared.core._parallel import place", "shared.core._parallel"),
    "attribute": ("import shared\nshared.core._harness.unstack", "shared.core._harness"),
    "import_module": ("importlib.import_module('shared._launch')", "shared._launch"),
    "__import__": ("__import__('shared.checkpoint._cli')", "shared.checkpoint._cli"),
    "preload": ("context.set_forkserver_preload(['shared._command'])", "shared._command"),
}
"""Each form of a private import, and the private name the guard must report for it."""


@pytest.mark.parametrize(("line", "name"), list(PLANTED.values()), ids=list(PLANTED))
def test_a_private_import_planted_in_tests_docs_is_caught(tmp_path, line, name):
    copy = tmp_path / "tests" / "docs" / "test_docs.py"
    copy.parent.mkdir(parents=True)
    shutil.copy2(ROOT / "tests" / "docs" / "test_docs.py", copy)
    assert private_imports(tmp_path, ["tests"]) == []
    copy.write_text(copy.read_text() + "\n" + line + "\n")
    assert ("tests/docs/test_docs.py", name) in private_imports(tmp_path, ["tests"])


def test_a_relative_private_import_is_resolved_and_caught(tmp_path):
    # A plug-in package beside the tests, say, reaching into shared through a relative name.
    inner = tmp_path / "shared" / "plugins" / "mine.py"
    inner.parent.mkdir(parents=True)
    inner.write_text("from .. import _registry\nfrom ..core import _spec\n")
    assert {name for _, name in private_imports(tmp_path, ["shared/plugins"])} == {
        "shared._registry",
        "shared.core._spec",
    }


# --- no import cycles -----------------------------------------------------------------------


def test_no_import_cycles_between_shared_subpackages():
    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:3]) if parts[1:2] == ["models"] else ".".join(parts[:2])

    graph: dict[str, set[str]] = {}
    for path in SHARED.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        src = unit(module)
        for name in imported_names(path):
            if name.startswith("shared.") and unit(name) != src:
                graph.setdefault(src, set()).add(unit(name))
    # `shared/__init__` is the public face: the subpackages import it only for re-exports of
    # the core, so edges into "shared.__init__" are those of the core itself.
    _assert_acyclic(graph)
    assert {"shared.cli", "shared.models.bias_adder", "shared.docs"} <= set(graph)


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    seen: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        if seen.get(node) == 1:
            cycle = [*stack[stack.index(node) :], node]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*stack, node])
        seen[node] = 2

    for node in sorted(graph):
        visit(node, [])


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of `shared` and the `impl_*` packages it imports at run time."""
    paths = {}
    for path in _python_files(root, ["shared", *IMPL_PACKAGES]):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        paths[module.removesuffix(".__init__")] = path
    graph = {
        m: {n for n in imported_names(p, root, runtime_only=True) if n in paths} - {m}
        for m, p in paths.items()
    }
    # A package's __init__ re-exports its modules: an edge from a module into its own
    # package (`from . import _x` resolved above) is no cycle of two modules.
    return {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}


def test_no_import_cycles_between_modules_of_shared_and_the_impl_packages():
    graph = module_graph()
    assert {"shared.cli", "shared.core._run", *IMPL_PACKAGES} <= set(graph)
    _assert_acyclic(graph)
    # The checkpoint commands used to import the transplant module, which imported them back.
    assert "shared.checkpoint._transplant" in graph["shared.checkpoint._cli"]


def test_a_planted_cycle_is_caught(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(SHARED, root / "shared")
    for package in IMPL_PACKAGES:
        shutil.copytree(ROOT / package, root / package)
    # The registry's loader, reaching back into the registry through a relative import.
    loader = root / "shared" / "core" / "_loader.py"
    loader.write_text(loader.read_text() + "\nfrom .. import _registry\n")
    with pytest.raises(AssertionError, match=r"import cycle: .*shared\._registry"):
        _assert_acyclic(module_graph(root))


MAX_LINES = 450
"""The longest a module may be (issue 27: small modules)."""
MAX_CLI_LINES = 150
"""The command line's dispatcher is a table (issue 27: a thin command line)."""


def test_no_module_of_shared_or_the_frameworks_is_over_the_line_limit():
    packages = [SHARED, *sorted(ROOT.glob("impl_*"))]
    long = {
        str(path.relative_to(ROOT)): n
        for package in packages
        for path in package.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
    assert len((SHARED / "cli.py").read_text().splitlines()) <= MAX_CLI_LINES
