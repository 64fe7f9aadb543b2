"""`state-rosetta docs`: the idioms side by side, generated from the real code, as a site.

The framework files mark the code for each concept with `# --8<-- [start:NAME]` and
`# --8<-- [end:NAME]` comment lines (the section markers of `pymdownx.snippets`). This module
checks those regions (each concept's region present in each framework's file, markers
paired), writes the guide's Markdown pages (one per topic, see `_pages`), a results page from
a real `compare` run with its plot, and the recorded numbers of `docs/performance.md`; then
MkDocs with Material builds the site (`_site`), cutting the code from the files at build time.

`--check` writes nothing: it fails when a generated page, the plot or a recorded number is
stale, or when the site does not build without warnings.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import re
import tempfile
import textwrap
from pathlib import Path

from .._api import CompareOptions, run_compare
from .._registry import FRAMEWORKS, MODELS, load_spec
from ..core import CompareResult, finite_or_named, write_atomic
from ..report import plot
from . import _checkpoints, _fast_loops, _layer_trace, _pages, _site
from ._content import Concept, ModelDocs

GOTCHAS_MD = "docs/guide/gotchas.md"
RESULTS_MD = "docs/results.md"
RESULTS_PNG = "docs/assets/trajectories.png"
PERFORMANCE_MD = "docs/performance.md"  # prose, with blocks generated from recorded bench runs
README_MD = "README.md"
# Hand-written pages whose `<!-- generated: ... -->` blocks are rendered from recorded runs.
RECORDED_PAGES = (PERFORMANCE_MD, README_MD)

# `<!-- generated: BLOCK FILE.json ... -->` ... `<!-- end generated -->`, files under docs/.
GENERATED = re.compile(
    r"^<!-- generated: ([\w-]+)((?: [\w.\-]+\.json)+) -->\n.*?^<!-- end generated -->$",
    re.MULTILINE | re.DOTALL,
)

MARKER = re.compile(r"^\s*# --8<-- \[(start|end):([A-Za-z0-9_-]+)\]\s*$")


@functools.cache
def frameworks() -> dict[str, tuple[str, str]]:
    """Region prefix (`"linen"`) -> (display name, implementation name), from the registry."""
    return {fw.region: (fw.title, name) for name, fw in FRAMEWORKS.items()}


@functools.cache
def model_docs() -> tuple[ModelDocs, ...]:
    """Every built-in model's part of the guide, in the registry's order."""
    return tuple(
        spec.docs for spec in (load_spec(m) for m in MODELS) if isinstance(spec.docs, ModelDocs)
    )


def guide_docs() -> tuple[ModelDocs, ...]:
    """Every part of the guide: the built-in models', then those of no one model (fast loops,
    checkpoints, layer traces)."""
    return (*model_docs(), _fast_loops.DOCS, _checkpoints.DOCS, _layer_trace.DOCS)


def concepts() -> list[Concept]:
    """Every concept of the guide, in its order (see `guide_docs`)."""
    return [c for docs in guide_docs() for c in docs.concepts]


def gotchas() -> list[tuple[str, str]]:
    """Every trap, each pointing at the code or test that shows it."""
    return [g for docs in guide_docs() for g in docs.gotchas]


def source(concept: Concept, framework: str) -> str:
    """The file (relative to the root) that holds `concept`'s region for `framework`."""
    return concept.files[frameworks()[framework][1]]


class DocsError(ValueError):
    """A missing, duplicated or unclosed region marker, or no repository root."""


# --- regions -------------------------------------------------------------------------------


def parse_regions(text: str, source: str = "<text>") -> dict[str, str]:
    """Every marked region of `text`: name -> dedented code, nested marker lines dropped."""
    lines = text.splitlines()
    opened: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        match = MARKER.match(line)
        if match is None:
            continue
        kind, name = match.groups()
        if kind == "start":
            if name in opened or name in spans:
                raise DocsError(f"{source}:{number}: region {name!r} is started twice")
            opened[name] = number
        else:
            if name not in opened:
                what = "ended twice" if name in spans else "ended but never started"
                raise DocsError(f"{source}:{number}: region {name!r} is {what}")
            spans[name] = (opened.pop(name), number)
    for name, number in opened.items():
        raise DocsError(f"{source}:{number}: region {name!r} is never ended")
    regions = {}
    for name, (start, end) in spans.items():
        body: list[str] = []
        dropped = False  # a nested marker was dropped since the last kept line
        for line in lines[start : end - 1]:
            if MARKER.match(line):
                dropped = True
                continue
            if dropped and not line.strip() and body and not body[-1].strip():
                continue  # the formatter's blank line around a dropped marker: keep one
            body.append(line)
            dropped = dropped and not line.strip()
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if not body:
            raise DocsError(f"{source}:{start}: region {name!r} is empty")
        regions[name] = top_level_spacing(textwrap.dedent("\n".join(body)))
    return regions


def top_level_spacing(code: str) -> str:
    """`code` with two blank lines around its top-level `def`s and `class`es, as the formatter
    wants them: a region cut from a function body holds nested functions, one blank line apart
    there, which the dedent brings to the top level (`ruff format` also formats the guide's
    blocks). Code that does not parse on its own is left as it is."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return code
    lines = code.splitlines()
    definition = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    starts = []  # 0-based first lines of the statements to put two blank lines before
    for before, stmt in itertools.pairwise(body):
        if not isinstance(before, definition) and not isinstance(stmt, definition):
            continue
        decorators = getattr(stmt, "decorator_list", [])
        start = min([stmt.lineno, *(d.lineno for d in decorators)]) - 1
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1  # the comments just above belong to the statement
        starts.append(start)
    if not starts:
        return code
    for start in reversed(starts):
        first = start
        while first > 0 and not lines[first - 1].strip():
            first -= 1
        lines[first:start] = ["", ""]
    return "\n".join(lines)


def read_regions(root: Path) -> dict[str, dict[str, str]]:
    """concept key -> framework -> code, from the framework files under `root`."""
    out: dict[str, dict[str, str]] = {c.key: {} for c in concepts()}
    parsed: dict[str, dict[str, str]] = {}
    for concept in concepts():
        for framework in frameworks():
            relpath = source(concept, framework)
            if relpath not in parsed:
                path = root / relpath
                if not path.is_file():
                    raise DocsError(f"{relpath}: no such file under {root}")
                parsed[relpath] = parse_regions(path.read_text(encoding="utf-8"), relpath)
            regions = parsed[relpath]
            name = f"{framework}-{concept.key}"
            if name not in regions:
                raise DocsError(
                    f"{relpath}: missing region {name!r} "
                    f"(mark it with '# --8<-- [start:{name}]' ... '# --8<-- [end:{name}]')"
                )
            out[concept.key][framework] = regions[name]
            for extra in concept.extra.get(frameworks()[framework][1], ()):
                name = f"{framework}-{extra}"
                if name not in regions:
                    raise DocsError(f"{relpath}: missing region {name!r}")
                out.setdefault(extra_key(concept, framework, extra), {})[framework] = regions[name]
    return out


def extra_key(concept: Concept, framework: str, extra: str) -> str:
    """Where `read_regions` keeps an extra region of a concept (beside the concept keys)."""
    return f"{concept.key}/{framework}-{extra}"


def extras(concept: Concept, framework: str) -> list[tuple[str, str]]:
    """(region name, extra key) of each extra region a framework shows for a concept."""
    return [
        (f"{framework}-{e}", extra_key(concept, framework, e))
        for e in concept.extra.get(frameworks()[framework][1], ())
    ]


def find_root(start: Path | None = None) -> Path:
    """The repository root: `start`, else the current directory or the package's parent."""
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).parents[2]]
    for candidate in candidates:
        root = candidate.resolve()
        if (root / "pyproject.toml").is_file() and all(
            (root / relpath).is_file() for relpath in _sources()
        ):
            return root
    raise DocsError(
        "cannot find the repository root (a folder with pyproject.toml and "
        f"{', '.join(_sources())}); run from the checkout"
    )


def _sources() -> list[str]:
    return sorted({path for c in concepts() for path in c.files.values()})


# --- rendering -----------------------------------------------------------------------------


@functools.cache
def default_result() -> CompareResult:
    """The default `compare` run (every framework and loop), once per process."""
    return run_compare(CompareOptions())


def render(root: Path, result: CompareResult | None = None) -> dict[str, bytes]:
    """Every generated file: path relative to `root` -> content.

    The regions are read first, so that a missing or unpaired marker is named here, with
    its file and line, before the site builder meets it.
    """
    read_regions(root)
    result = default_result() if result is None else result
    pages = _pages.topic_pages(concepts(), frameworks(), extra_regions)
    files = {path: text.encode() for path, text in pages.items()}
    files[GOTCHAS_MD] = _pages.gotchas_page(gotchas()).encode()
    plot_link = Path(RESULTS_PNG).relative_to(Path(RESULTS_MD).parent).as_posix()
    files[RESULTS_MD] = _pages.results_page(result, plot_link).encode()
    files[RESULTS_PNG] = render_plot(result)
    for relpath in RECORDED_PAGES:
        if (root / relpath).is_file():
            page = (root / relpath).read_text(encoding="utf-8")
            files[relpath] = render_generated_blocks(root, page, relpath).encode()
    return files


def extra_regions(concept: Concept, framework: str) -> list[str]:
    """The extra regions `framework` (a region prefix) shows for `concept`."""
    return [name for name, _ in extras(concept, framework)]


def render_generated_blocks(root: Path, text: str, page: str = "docs/performance.md") -> str:
    """Re-render each generated block of `page` (its text) from the recorded runs it names."""
    from ._performance import BLOCKS

    def block(match: re.Match[str]) -> str:
        name, files = match.group(1), match.group(2)
        if name not in BLOCKS:
            raise DocsError(
                f"{page}: unknown generated block {name!r}; expected one of {', '.join(BLOCKS)}"
            )
        runs = {}
        for file in files.split():
            path = root / "docs" / file
            if not path.is_file():
                raise DocsError(f"{page}: block {name!r} names docs/{file}, not found")
            data = finite_or_named(json.loads(path.read_text(encoding="utf-8")))
            label = f"Python {data.get('python', '?')}"
            runs[f"{label} ({file})" if label in runs else label] = data
        return f"<!-- generated: {name}{files} -->\n{BLOCKS[name](runs)}\n<!-- end generated -->"

    return GENERATED.sub(block, text)


def render_plot(result: CompareResult) -> bytes:
    """The trajectory PNG of `shared.report.plot` (no timestamp: the bytes are stable).

    Drawn once per result object: `check` and `write` in one process reuse it.
    """
    cached = _PLOTS.get(id(result))
    if cached is not None and cached[0] is result:
        return cached[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trajectories.png"
        plot(result, path)
        content = path.read_bytes()
    _PLOTS[id(result)] = (result, content)  # the result is kept, so its id is not reused
    return content


_PLOTS: dict[int, tuple[CompareResult, bytes]] = {}


# --- writing and checking ------------------------------------------------------------------


def write(root: Path | None = None, result: CompareResult | None = None) -> list[str]:
    """Write every generated file under `root`; return the paths written (relative).

    A guide page that is no longer generated (its topic lost its last concept) is removed.
    """
    root = find_root(root)
    files = render(root, result)
    for relpath in _orphans(root, files):
        (root / relpath).unlink()
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, content)
        path.chmod(0o644)  # mkstemp makes 0600; these are for reading
    return list(files)


def check(root: Path | None = None, result: CompareResult | None = None) -> list[str]:
    """The generated files that are missing, differ from what would be generated now, or are
    no longer generated."""
    root = find_root(root)
    files = render(root, result)
    stale = []
    for relpath, content in files.items():
        path = root / relpath
        if not path.is_file() or path.read_bytes() != content:
            stale.append(relpath)
    return stale + _orphans(root, files)


def _orphans(root: Path, files: dict[str, bytes]) -> list[str]:
    """Pages in the generated guide folder that nothing generates any more."""
    guide = root / Path(GOTCHAS_MD).parent
    found = sorted(p.relative_to(root).as_posix() for p in guide.glob("*.md"))
    return [relpath for relpath in found if relpath not in files]


def build_site(root: Path | None = None, site_dir: Path | None = None) -> Path:
    """Build the site with MkDocs (`--strict`) into `site_dir` (default: `root/site`)."""
    root = find_root(root)
    site_dir = root / _site.SITE_DIR if site_dir is None else site_dir
    _site.build(root, site_dir)
    return site_dir
