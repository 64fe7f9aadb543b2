"""`state-rosetta docs`: the guide is generated from the real code, built by MkDocs, and kept
current."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import measured_on_the_311_set

from shared import docs
from shared.cli import main
from shared.docs import TOPICS

ROOT = Path(__file__).parent.parent.parent
PAGES = {t.slug: ROOT / docs.page_path(t) for t in TOPICS}
SNIPPET = re.compile(r'^ *--8<-- "([^":]+):([\w-]+)"$', re.MULTILINE)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from the checkout as it is (`mkdocs build --strict`)."""
    return docs.build_site(ROOT, tmp_path_factory.mktemp("site") / "site")


@pytest.fixture(scope="module")
def result():
    """The default compare run, made once per process (`default_result` caches it): the
    command line's `docs` in these tests reads the same one."""
    return docs.default_result()


# The site shows a compare run (its table, plot and versions): the 3.11 set's, as committed.
ON_311_SET = measured_on_the_311_set("the generated site's compare run")


@ON_311_SET
def test_docs_check_passes_on_the_tree(result, site):
    """Every generated file is current; the site fixture has built the tree, strictly (CI
    also runs `state-rosetta docs --check`, which does both)."""
    assert docs.check(ROOT, result) == []
    assert (site / "index.html").is_file()


def _sections(page: str) -> dict[str, str]:
    """Each concept's section of a guide page, by the concept's key (its heading's anchor)."""
    parts = re.split(r"^## .*\{ #([\w-]+) \}$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_concept_is_on_its_topic_page_once_per_framework_in_framework_order():
    frameworks = docs.frameworks()
    assert len(frameworks) == 5
    for topic in TOPICS:
        concepts = [c for c in docs.concepts() if c.topic == topic.slug]
        assert concepts, f"topic {topic.slug} has no concept"
        sections = _sections(PAGES[topic.slug].read_text())
        assert list(sections) == [c.key for c in concepts]  # the registry's order
        for concept in concepts:
            tabs, columns = sections[concept.key].split(f'=== "{docs.COLUMNS_LABEL}"')
            expected = []
            for framework in frameworks:
                relpath = docs.source(concept, framework)
                expected.append((relpath, f"{framework}-{concept.key}"))
                expected += [(relpath, r) for r in docs.extra_regions(concept, framework)]
            # The same blocks in both views, each naming its file and region.
            assert SNIPPET.findall(tabs) == expected
            assert SNIPPET.findall(columns) == expected
            labels = re.findall(r'^ {4}=== "(.+)"$', tabs, flags=re.MULTILINE)
            assert labels == [name for name, _ in frameworks.values()]
            assert columns.count("**What differs.**") == 1


def test_the_nav_lists_every_generated_page_and_every_page_is_in_it():
    config = (ROOT / docs.CONFIG).read_text()
    listed = re.findall(r"^ +- (?:[^:\n]+: )?([\w/.-]+\.md)$", config, flags=re.MULTILINE)
    on_disk = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(listed) == on_disk
    for topic in TOPICS:
        assert f"guide/{topic.slug}.md" in listed


def test_gotchas_point_at_real_files_and_tests():
    gotchas = (ROOT / docs.GOTCHAS_MD).read_text()
    for ref in re.findall(r"`((?:tests|impl_\w+)/[\w/.]+\.py)(?:::(\w+))?`", gotchas):
        path, test = ref
        assert (ROOT / path).is_file(), path
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(), ref
    for doc in re.findall(r"`(docs/[\w.]+\.md)`", gotchas):
        assert (ROOT / doc).is_file(), doc
    for needle in ("keepdims=True", "hk.running_init()", "static=True", "copy=True", "--defaults"):
        assert needle in gotchas


def _text(page_html: str) -> str:
    """A built page's text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


def _code_lines(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip()]


def test_the_built_site_shows_each_region_as_the_file_has_it(site):
    """The engine cuts the regions at build time (`pymdownx.snippets`): each page of the built
    site holds, for every concept and framework, the region's code as the region parser reads
    it (dedented, nested markers dropped; blank lines aside)."""
    regions = docs.read_regions(ROOT)
    for topic in TOPICS:
        text = _text((site / "guide" / f"{topic.slug}.html").read_text())
        for concept in (c for c in docs.concepts() if c.topic == topic.slug):
            for framework in docs.frameworks():
                lines = _code_lines(regions[concept.key][framework])
                assert "\n".join(lines) in "\n".join(_code_lines(text)), (concept.key, framework)
                assert "--8<--" not in text


def test_the_built_site_loads_nothing_from_outside(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"<(?:script|img)[^>]* src=\"(?:https?:)?//", text), page
        assert not re.search(r"<link[^>]* href=\"(?:https?:)?//", text), page
    results = (site / "results.html").read_text()
    assert 'src="assets/trajectories.png"' in results and "all trajectories agree" in results


def _copy_tree(tmp_path: Path) -> Path:
    """What `state-rosetta docs` reads, copied: the configuration, the pages, the recorded runs,
    the framework files the guide cuts from, and the package the API reference documents."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "docs", root / "docs", ignore=ignore)
    shutil.copytree(ROOT / "shared", root / "shared", ignore=ignore)
    frameworks = docs.frameworks()
    sources = {docs.source(c, fw) for c in docs.concepts() for fw in frameworks}
    for relpath in ["pyproject.toml", docs.CONFIG, *sorted(sources)]:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relpath, root / relpath)
    return root


@ON_311_SET
def test_a_stale_or_missing_or_orphaned_page_makes_check_fail_until_regenerated(tmp_path, result):
    root = _copy_tree(tmp_path)
    assert docs.check(root, result) == []
    init = root / docs.page_path(TOPICS[1])
    init.write_text(init.read_text().replace("## Initialise", "## Initialize"))
    (root / docs.GOTCHAS_MD).unlink()
    orphan = root / "docs/guide/old-topic.md"
    orphan.write_text("# a page no concept generates any more\n")
    stale = [docs.page_path(TOPICS[1]), docs.GOTCHAS_MD, "docs/guide/old-topic.md"]
    assert docs.check(root, result) == stale
    assert main(["docs", "--check", "--root", str(root)]) == 1
    docs.write(root, result)
    assert not orphan.exists()
    assert docs.check(root, result) == []


@ON_311_SET
def test_an_edited_region_reaches_the_site_with_nothing_to_regenerate(tmp_path, result):
    """The pages name regions, not code: an edit inside a region leaves every generated file
    current, and the next build shows it (a region cannot go stale)."""
    root = _copy_tree(tmp_path)
    haiku = root / "impl_haiku/_bias_adder.py"
    text = haiku.read_text()
    old = 'bias = hk.get_parameter("bias", x.shape[1:], init=jnp.zeros)'
    assert text.count(old) == 1
    haiku.write_text(text.replace(old, old + "  # edited"))
    assert docs.check(root, result) == []
    site = docs.build_site(root, tmp_path / "site")
    page = _text((site / "guide/parameters-and-state.html").read_text())
    assert "init=jnp.zeros)  # edited" in page


def test_a_site_warning_fails_the_check(tmp_path, capsys):
    """The build is strict: a warning (here, a link to a page that does not exist) is an
    error, named in the output."""
    root = _copy_tree(tmp_path)
    porting = root / "docs/porting.md"
    porting.write_text(porting.read_text() + "\nSee [the old page](idioms.md).\n")
    with pytest.raises(docs.SiteError, match=r"idioms\.md"):
        docs.build_site(root, tmp_path / "site")


@ON_311_SET
def test_a_stale_recorded_number_makes_check_fail(tmp_path, result):
    """The performance page's tables are rendered from the recorded runs: a run re-recorded
    (here, one median changed) leaves the page stale until `state-rosetta docs` rewrites it."""
    root = _copy_tree(tmp_path)
    assert docs.check(root, result) == []
    page = (root / docs.PERFORMANCE_MD).read_text()
    recorded = root / "docs/performance.json"
    bench = json.loads(recorded.read_text())
    row = next(r for r in bench["rows"] if r["impl"] == "flax_nnx" and r["path"] == "native")
    cells = f"| {row['model']} | {row['shape']} | flax_nnx | native |"
    old = f"{cells} {row['step_s_median'] * 1e6:.1f} |"
    assert old in page  # the page shows the recorded median, as recorded
    row["step_s_median"] *= 2
    recorded.write_text(json.dumps(bench))
    assert docs.check(root, result) == [docs.PERFORMANCE_MD]
    docs.write(root, result)
    new = f"{cells} {row['step_s_median'] * 1e6:.1f} |"
    assert new in (root / docs.PERFORMANCE_MD).read_text()
    assert docs.check(root, result) == []


def test_a_generated_block_must_name_a_known_table_and_existing_runs(tmp_path):
    (tmp_path / "docs").mkdir()
    with pytest.raises(docs.DocsError, match="unknown generated block 'nope'"):
        docs.render_generated_blocks(
            tmp_path, "<!-- generated: nope a.json -->\n<!-- end generated -->\n"
        )
    with pytest.raises(docs.DocsError, match=r"names docs/missing\.json, not found"):
        docs.render_generated_blocks(
            tmp_path, "<!-- generated: rows missing.json -->\n<!-- end generated -->\n"
        )


@pytest.mark.parametrize(
    "text, message",
    [
        ("# --8<-- [start:a]\nx = 1\n", "region 'a' is never ended"),
        ("x = 1\n# --8<-- [end:a]\n", "region 'a' is ended but never started"),
        ("# --8<-- [start:a]\n# --8<-- [start:a]\n", "region 'a' is started twice"),
        ("# --8<-- [start:a]\nx\n# --8<-- [end:a]\n# --8<-- [start:a]\n", "started twice"),
        ("# --8<-- [start:a]\n\n# --8<-- [end:a]\n", "region 'a' is empty"),
    ],
)
def test_bad_markers_are_named_with_file_and_line(text, message):
    with pytest.raises(docs.DocsError, match=re.escape(message)) as e:
        docs.parse_regions(text, "f.py")
    assert str(e.value).startswith("f.py:")


def test_nested_regions_are_dedented_without_their_markers():
    text = (
        "def f():\n"
        "    # --8<-- [start:outer]\n"
        "    a = 1\n"
        "    # --8<-- [start:inner]\n"
        "    b = 2\n"
        "\n"
        "    # --8<-- [end:inner]\n"
        "\n"
        "    c = 3\n"
        "    # --8<-- [end:outer]\n"
    )
    assert docs.parse_regions(text) == {"outer": "a = 1\nb = 2\n\nc = 3", "inner": "b = 2"}


def test_functions_the_dedent_brings_to_the_top_level_get_two_blank_lines():
    text = (
        "def loop():\n"
        "    # --8<-- [start:a]\n"
        "    x = 1\n"
        "\n"
        "    # said of f\n"
        "    def f():\n"
        "        return x\n"
        "\n"
        "    y = f()\n"
        "    # --8<-- [end:a]\n"
    )
    got = docs.parse_regions(text)["a"]
    assert got == "x = 1\n\n\n# said of f\ndef f():\n    return x\n\n\ny = f()"
    nested = "if x:\n    y = 1\n\n    def f(): ...\n"
    assert docs.top_level_spacing(nested) == nested


def test_a_missing_region_is_an_error_naming_it(tmp_path, capsys):
    root = _copy_tree(tmp_path)
    nnx = root / "impl_flax/_nnx/_adapter.py"
    nnx.write_text(nnx.read_text().replace("[end:nnx-merge]", "[end:nnx-merged]"))
    assert main(["docs", "--check", "--root", str(root)]) == 2
    assert "impl_flax/_nnx/_adapter.py" in capsys.readouterr().err
    text = re.sub(r"^ *# --8<-- \[(start|end):nnx-merged?\]\n", "", nnx.read_text(), flags=re.M)
    nnx.write_text(text)
    with pytest.raises(docs.DocsError, match="missing region 'nnx-merge'"):
        docs.read_regions(root)


def test_the_quick_bench_time_in_the_help_is_the_recorded_runs(capsys):
    """`bench --help` states the smoke run's time; it is checked against the recorded run
    (`state-rosetta bench --quick --json docs/performance-quick.json`), which the README's
    table of run times is rendered from."""
    recorded = json.loads((ROOT / "docs/performance-quick.json").read_text())
    assert recorded["quick"] is True
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"a smoke run ({round(recorded['seconds'])} s on 2 cores in the recorded run" in text
