"""`state-rosetta docs`: the idioms side by side, generated from the real code.

The four framework files mark the code for each concept with `# --8<-- [start:NAME]` and
`# --8<-- [end:NAME]` comment lines. This module cuts those regions out (dedented, nested
markers dropped, top-level definitions two blank lines apart) and writes `docs/idioms.md`
and a static page `docs/site/index.html` (with the trajectory plot and the comparison table
of a real `compare` run beside it).

Pure text processing: it imports no framework, only reads their source files.
"""

from __future__ import annotations

import argparse
import ast
import functools
import html
import itertools
import json
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from rich.console import Console

from .._api import CompareOptions, run_compare
from .._registry import FRAMEWORKS, MODELS, load_spec
from ..core import CompareResult, write_atomic
from ..report import comparison_rows, plot, summary
from . import _checkpoints, _fast_loops
from ._content import Concept, ModelDocs

IDIOMS_MD = "docs/idioms.md"
SITE_HTML = "docs/site/index.html"
SITE_PNG = "docs/site/trajectories.png"
PERFORMANCE_JSON = "docs/performance.json"  # from `state-rosetta bench --json`; optional
PERFORMANCE_PNG = "docs/performance.png"  # from `state-rosetta bench --plot`; optional
SITE_PERFORMANCE_PNG = "docs/site/performance.png"
PERFORMANCE_MD = "docs/performance.md"  # prose, with blocks generated from recorded bench runs

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
    """Every part of the guide: the built-in models', then those of no one model (checkpoints)."""
    return (*model_docs(), _fast_loops.DOCS, _checkpoints.DOCS)


def concepts() -> list[Concept]:
    """Every concept of every built-in model, then the checkpoints'."""
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
    """Every generated file: path relative to `root` -> content."""
    code = read_regions(root)
    result = default_result() if result is None else result
    files = {IDIOMS_MD: render_markdown(code).encode(), SITE_PNG: render_plot(result)}
    extra = None
    if (root / PERFORMANCE_JSON).is_file():
        bench = json.loads((root / PERFORMANCE_JSON).read_text(encoding="utf-8"))
        has_plot = (root / PERFORMANCE_PNG).is_file()
        extra = performance_section(bench, has_plot)
        if has_plot:
            files[SITE_PERFORMANCE_PNG] = (root / PERFORMANCE_PNG).read_bytes()
    files[SITE_HTML] = render_html(code, result, extra).encode()
    if (root / PERFORMANCE_MD).is_file():
        page = (root / PERFORMANCE_MD).read_text(encoding="utf-8")
        files[PERFORMANCE_MD] = render_generated_blocks(root, page).encode()
    return files


def render_generated_blocks(root: Path, text: str) -> str:
    """Re-render each generated block of a page from the recorded runs it names."""
    from ._performance import BLOCKS

    def block(match: re.Match[str]) -> str:
        name, files = match.group(1), match.group(2)
        if name not in BLOCKS:
            raise DocsError(
                f"{PERFORMANCE_MD}: unknown generated block {name!r}; expected one of "
                f"{', '.join(BLOCKS)}"
            )
        runs = {}
        for file in files.split():
            path = root / "docs" / file
            if not path.is_file():
                raise DocsError(f"{PERFORMANCE_MD}: block {name!r} names docs/{file}, not found")
            data = json.loads(path.read_text(encoding="utf-8"))
            label = f"Python {data.get('python', '?')}"
            runs[f"{label} ({file})" if label in runs else label] = data
        return f"<!-- generated: {name}{files} -->\n{BLOCKS[name](runs)}\n<!-- end generated -->"

    return GENERATED.sub(block, text)


def performance_section(bench: dict[str, Any], has_plot: bool) -> str:
    """The recorded bench run (docs/performance.json) as an HTML table, with its plot."""
    head = ("shape", "impl", "path", "median us", "p10-p90 us", "x baseline", "baseline", "GB/s")
    out = [
        f"<p>One run of <code>state-rosetta bench</code> on {html.escape(bench['device'])}; "
        "explained in <code>docs/performance.md</code>.</p>"
    ]
    if has_plot:
        out.append('<img id="performance-plot" src="performance.png" alt="ratios to pure JAX">')
    out += ['<table id="performance-table">', "<thead><tr>"]
    out.append("".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for r in bench["rows"]:
        bandwidth = "-" if r["bandwidth_gbs"] is None else f"{r['bandwidth_gbs']:.1f}"
        cells = (
            r["shape"],
            r["impl"],
            r["path"],
            f"{r['step_s_median'] * 1e6:.1f}",
            f"{r['step_s_p10'] * 1e6:.1f}-{r['step_s_p90'] * 1e6:.1f}",
            f"{r.get('ratio', r['ratio_to_jax']):.2f}",
            r.get("baseline", "-"),
            bandwidth,
        )
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def render_markdown(code: dict[str, dict[str, str]]) -> str:
    out = [
        "# The idioms side by side",
        "",
        "<!-- Generated by `state-rosetta docs` from the marked regions of the framework files;",
        "     do not edit by hand. `state-rosetta docs --check` fails when this file is stale. -->",
        "",
        "The same running-mean bias adder in Flax Linen, Flax NNX, Haiku and Equinox, concept by",
        "concept, and the mlp-bn model for BatchNorm. Every block is cut from the real code",
        "(between `# --8<-- [start:NAME]` and `# --8<-- [end:NAME]`), which the test suite",
        "trains and compares step by step.",
        "",
    ]
    for i, concept in enumerate(concepts(), start=1):
        out += [f"## {i}. {concept.title}", ""]
        for framework, (name, _) in frameworks().items():
            region = f"{framework}-{concept.key}"
            out += [f"**{name}** (`{source(concept, framework)}`, region `{region}`)", ""]
            out += ["```python", code[concept.key][framework], "```", ""]
            for region, key in extras(concept, framework):
                out += [f"**{name}**, also (region `{region}`)", ""]
                out += ["```python", code[key][framework], "```", ""]
        out += [f"**What differs:** {concept.differs}", ""]
    out += ["## Gotchas", ""]
    for title, text in gotchas():
        out += [f"- **{title}.** {text}"]
    out += [""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Markdown-ish inline text to HTML: escape, then `code` and **bold**."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def comparison_table(result: CompareResult) -> str:
    """The comparison as an HTML table (the rows of `state-rosetta compare`)."""
    head, rows = comparison_rows(result)
    config = result.config
    options = ", ".join(f"{k} {v}" for k, v in config.get("options", {}).items())
    caption = (
        f"{result.model} ({options}), {config['optimizer']} lr {config['lr']}, "
        f"{config['steps']} steps of batch {config['batch']}; every "
        f"trajectory against {result.reference}"
    )
    out = ['<table id="comparison-table">', f"<caption>{html.escape(caption)}</caption>"]
    out.append(
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>"
    )
    out.append("<tbody>")
    for row in rows:
        verdict = row[-1].split()[0].lower()
        cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
        out.append(f'<tr class="verdict-{verdict}">{cells}</tr>')
    out += ["</tbody>", "</table>"]
    out.append(f'<p class="summary">{html.escape(summary(result))}</p>')
    return "\n".join(out)


def render_plot(result: CompareResult) -> bytes:
    """The trajectory PNG of `shared.report.plot` (no timestamp: the bytes are stable)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trajectories.png"
        plot(result, path)
        return path.read_bytes()


CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.5; }
code { background: #f2f2f2; padding: 0 .2em; border-radius: 3px; }
section.concept { border-top: 1px solid #ddd; margin-top: 1.5rem; }
.tabs { display: flex; gap: .25rem; margin: .5rem 0 0; }
.tab { border: 1px solid #bbb; border-bottom: none; background: #f6f6f6; cursor: pointer;
       padding: .3rem .8rem; border-radius: 4px 4px 0 0; font: inherit; }
.tab.active { background: #fff; font-weight: 600; border-color: #888; }
.codeblock { border: 1px solid #888; padding: .2rem .8rem; }
.codeblock .source { color: #666; font-size: .85em; margin: .3rem 0 0; }
.codeblock .highlight pre { margin: .4rem 0; overflow-x: auto; }
.differs { margin: .5rem 0 1rem; }
#trajectory-plot, #performance-plot { max-width: 100%; border: 1px solid #ddd; }
#comparison-table, #performance-table { border-collapse: collapse; font-size: .85em; }
#comparison-table th, #comparison-table td, #performance-table th, #performance-table td {
       border: 1px solid #ccc; padding: .15rem .5rem; }
#comparison-table td:nth-child(n+2):nth-child(-n+4), #performance-table td:nth-child(n+4) {
       text-align: right; font-variant-numeric: tabular-nums; }
tr.verdict-agrees td:last-child { color: #1a7f37; }
tr.verdict-diverges td:last-child, tr.verdict-failed td:last-child { color: #cf222e; }
"""

JS = """
(function () {
  function show(framework) {
    document.querySelectorAll('.tab').forEach(function (tab) {
      var on = tab.dataset.framework === framework;
      tab.classList.toggle('active', on);
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
    });
    document.querySelectorAll('.codeblock').forEach(function (block) {
      block.hidden = block.dataset.framework !== framework;
    });
    document.body.dataset.framework = framework;
  }
  document.querySelectorAll('.tab').forEach(function (tab) {
    tab.addEventListener('click', function () { show(tab.dataset.framework); });
  });
})();
"""


def render_html(
    code: dict[str, dict[str, str]], result: CompareResult, performance: str | None = None
) -> str:
    # No stubs for pygments in the pinned environment (types-Pygments is not installed).
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    formatter = HtmlFormatter(cssclass="highlight", noclasses=False)
    lexer = PythonLexer()
    first = next(iter(frameworks()))
    body: list[str] = [
        "<h1>jax-state-rosetta: the idioms side by side</h1>",
        "<p>The same running-mean bias adder (and, for BatchNorm, the mlp-bn model) in Flax "
        "Linen, Flax NNX, Haiku and Equinox. Every "
        "block is cut from the real code, which the test suite trains and compares step by "
        "step. Pick a framework on any block: every block follows.</p>",
        '<nav><ol id="toc">',
    ]
    for concept in concepts():
        body.append(f'<li><a href="#{concept.key}">{html.escape(concept.title)}</a></li>')
    body += [
        '<li><a href="#gotchas">Gotchas</a></li>',
        '<li><a href="#results">Results</a></li>',
        "</ol></nav>",
    ]
    for concept in concepts():
        body.append(f'<section class="concept" id="{concept.key}">')
        body.append(f"<h2>{html.escape(concept.title)}</h2>")
        body.append('<div class="tabs" role="tablist">')
        for framework, (name, _) in frameworks().items():
            active = framework == first
            body.append(
                f'<button type="button" role="tab" class="tab{" active" if active else ""}" '
                f'data-framework="{framework}" aria-selected="{"true" if active else "false"}">'
                f"{html.escape(name)}</button>"
            )
        body.append("</div>")
        for framework in frameworks():
            relpath = source(concept, framework)
            hidden = "" if framework == first else " hidden"
            region = f"{framework}-{concept.key}"
            body.append(
                f'<div class="codeblock" data-framework="{framework}" '
                f'data-region="{region}"{hidden}>'
            )
            body.append(
                f'<p class="source"><code>{relpath}</code>, region <code>{region}</code></p>'
            )
            body.append(highlight(code[concept.key][framework], lexer, formatter).rstrip())
            for extra, key in extras(concept, framework):
                body.append(f'<p class="source">also: region <code>{extra}</code></p>')
                body.append(highlight(code[key][framework], lexer, formatter).rstrip())
            body.append("</div>")
        body.append(
            f'<p class="differs"><strong>What differs:</strong> {_inline(concept.differs)}</p>'
        )
        body.append("</section>")
    body += ['<section id="gotchas">', "<h2>Gotchas</h2>", "<ul>"]
    for title, text in gotchas():
        body.append(f"<li><strong>{_inline(title)}.</strong> {_inline(text)}</li>")
    body += ["</ul>", "</section>"]
    body += [
        '<section id="results">',
        "<h2>Results</h2>",
        "<p>The Flax page's setup trained in every framework and loop "
        "(<code>state-rosetta compare</code>): loss, bias, mean and each trajectory's distance "
        "to the reference, step by step.</p>",
        '<img id="trajectory-plot" src="trajectories.png" '
        'alt="loss, bias[0], mean[0] and the distance to the reference, per step">',
        comparison_table(result),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(result.versions.items()))
    body.append(f'<p class="versions">Versions: {html.escape(versions)}</p>')
    body.append("</section>")
    if performance is not None:
        body += ['<section id="performance">', "<h2>Performance</h2>", performance.strip()]
        body.append("</section>")
    style = CSS.strip() + "\n" + formatter.get_style_defs(".highlight")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>jax-state-rosetta: the idioms side by side</title>",
            "<!-- Generated by `state-rosetta docs`; do not edit by hand. -->",
            f"<style>\n{style}\n</style>",
            "</head>",
            f'<body data-framework="{first}">',
            *body,
            f"<script>{JS}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


# --- writing and checking ------------------------------------------------------------------


def write(root: Path | None = None, result: CompareResult | None = None) -> list[str]:
    """Write every generated file under `root`; return the paths written (relative)."""
    root = find_root(root)
    files = render(root, result)
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, content)
        path.chmod(0o644)  # mkstemp makes 0600; these are for reading
    return list(files)


def check(root: Path | None = None, result: CompareResult | None = None) -> list[str]:
    """The generated files that are missing or differ from what would be generated now."""
    root = find_root(root)
    stale = []
    for relpath, content in render(root, result).items():
        path = root / relpath
        if not path.is_file() or path.read_bytes() != content:
            stale.append(relpath)
    return stale


# --- command line --------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Add `docs` to the `state-rosetta` subcommands."""
    d = subparsers.add_parser(
        "docs",
        help="generate docs/idioms.md and docs/site/ from the marked regions of the code",
        description="Write docs/idioms.md, docs/site/index.html and docs/site/trajectories.png "
        "from the framework files' marked regions and a real compare run. With --check, write "
        "nothing: exit 1 and name the stale files when they differ, 0 when they are current.",
    )
    d.add_argument("--check", action="store_true", help="compare with the files on disk")
    d.add_argument("--root", type=Path, default=None, help="repository root (default: found)")


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta docs`: 0 written or current, 1 stale, 2 on a bad marker or root."""
    try:
        if args.check:
            stale = check(args.root)
            for relpath in stale:
                console.print(f"[bold red]stale[/] {relpath}")
            if stale:
                console.print("run `state-rosetta docs` to regenerate")
                return 1
            console.print("docs are up to date")
            return 0
        for relpath in write(args.root):
            console.print(f"wrote {relpath}")
        return 0
    except DocsError as e:
        print(f"state-rosetta: error: {e}", file=sys.stderr)
        return 2
