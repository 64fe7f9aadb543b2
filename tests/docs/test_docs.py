"""`state-rosetta docs`: the idioms page is generated from the real code, and kept current."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import measured_on_the_311_set

from shared.cli import main

# The docs tests check the generator's own parsing (its internals: allowed in tests/docs only).
from shared.docs import _generate

ROOT = Path(__file__).parent.parent.parent
IDIOMS = (ROOT / _generate.IDIOMS_MD).read_text()
MD_FILES = sorted((ROOT / "docs").glob("*.md"))
PY_BLOCKS = [
    pytest.param(path, i, block, id=f"{path.name}-block{i}")
    for path in MD_FILES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.DOTALL))
]
# A block's heading line: **Framework** (`path`, region `name`)
HEADING = re.compile(r"^\*\*(.+?)\*\* \(`([^`]+)`, region `([^`]+)`\)$", re.MULTILINE)


@pytest.fixture(scope="module")
def result():
    return _generate.default_result()


# The site shows a compare run (its table, plot and versions): the 3.11 set's, as committed.
ON_311_SET = measured_on_the_311_set("the generated site's compare run")


@ON_311_SET
def test_docs_check_passes_on_the_tree(capsys):
    assert main(["docs", "--check"]) == 0, capsys.readouterr().out
    assert "up to date" in capsys.readouterr().out


def test_every_concept_has_one_block_per_framework_in_framework_order():
    sections = re.split(r"^## ", IDIOMS, flags=re.MULTILINE)[1:]
    concepts = [s for s in sections if not s.startswith("Gotchas")]
    assert [s.splitlines()[0] for s in concepts] == [
        f"{i}. {c.title}" for i, c in enumerate(_generate.concepts(), start=1)
    ]
    for concept, section in zip(_generate.concepts(), concepts, strict=True):
        headings = HEADING.findall(section)
        assert headings == [
            (name, _generate.source(concept, fw), f"{fw}-{concept.key}")
            for fw, (name, _) in _generate.frameworks().items()
        ]
        shown_extras = sum(len(regions) for regions in concept.extra.values())
        assert section.count("```python\n") == len(_generate.frameworks()) + shown_extras
        assert len(_generate.frameworks()) == 5
        assert section.count("**What differs:**") == 1


def test_gotchas_point_at_real_files_and_tests():
    gotchas = IDIOMS.split("## Gotchas", 1)[1]
    for ref in re.findall(r"`((?:tests|impl_\w+)/[\w/.]+\.py)(?:::(\w+))?`", gotchas):
        path, test = ref
        assert (ROOT / path).is_file(), path
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(), ref
    for doc in re.findall(r"`(docs/[\w.]+\.md)`", IDIOMS):
        assert (ROOT / doc).is_file(), doc
    for needle in ("keepdims=True", "hk.running_init()", "static=True", "copy=True", "--defaults"):
        assert needle in gotchas


def _without_markers(text: str) -> str:
    lines = [line for line in text.splitlines() if not _generate.MARKER.match(line)]
    return re.sub(r"\n(?:[ \t]*\n)+", "\n\n", "\n".join(lines))  # one blank line at most


# "Executed", for these blocks, means: each is a fragment of a real framework file (a method,
# a few lines of a function), so it cannot run on its own. Instead each block is checked to
# be valid Python and a verbatim, dedented excerpt of the file its heading names, and that
# file is imported and trained by the rest of the suite (test_model.py, test_equivalence.py).
@pytest.mark.parametrize("path, index, block", PY_BLOCKS)
def test_every_python_block_is_real_code(path, index, block):
    ast.parse(block)
    text = path.read_text()
    block_start = text.index(block)
    source = HEADING.findall(text[:block_start])[-1][1]
    real = _without_markers((ROOT / source).read_text())
    lines = block.rstrip("\n").splitlines()
    found = False
    for indent in range(0, 17, 4):
        excerpt = "\n".join(" " * indent + line if line.strip() else "" for line in lines)
        found = found or _without_markers(excerpt) in real
    assert found, f"{path.name} block {index} is not an excerpt of {source}"


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for relpath in [
        "pyproject.toml",
        *sorted(
            {_generate.source(c, fw) for c in _generate.concepts() for fw in _generate.frameworks()}
        ),
        _generate.IDIOMS_MD,
        _generate.SITE_HTML,
        _generate.SITE_PNG,
        _generate.PERFORMANCE_JSON,
        _generate.PERFORMANCE_PNG,
        _generate.SITE_PERFORMANCE_PNG,
        _generate.PERFORMANCE_MD,
        *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("performance*.json"))),
    ]:
        if not (ROOT / relpath).exists():
            continue  # the bench run's files are optional
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relpath, root / relpath)
    return root


@ON_311_SET
def test_editing_a_marked_region_makes_check_fail_until_regenerated(tmp_path, result):
    root = _copy_tree(tmp_path)
    assert _generate.check(root, result) == []
    haiku = root / "impl_haiku/_bias_adder.py"
    text = haiku.read_text()
    old = 'bias = hk.get_parameter("bias", x.shape[1:], init=jnp.zeros)'
    assert text.count(old) == 1
    haiku.write_text(text.replace(old, old + "  # edited"))
    assert _generate.check(root, result) == [_generate.IDIOMS_MD, _generate.SITE_HTML]
    assert main(["docs", "--check", "--root", str(root)]) == 1
    written = set(_generate.write(root, result))
    assert written >= {_generate.IDIOMS_MD, _generate.SITE_HTML, _generate.SITE_PNG}
    assert "init=jnp.zeros)  # edited" in (root / _generate.IDIOMS_MD).read_text()
    assert _generate.check(root, result) == []


@ON_311_SET
def test_an_edit_outside_the_regions_leaves_the_docs_current(tmp_path, result):
    root = _copy_tree(tmp_path)
    linen = root / "impl_flax/_linen.py"
    linen.write_text(linen.read_text() + "\n# a comment outside every region\n")
    assert _generate.check(root, result) == []


def test_the_recorded_bench_run_is_included_when_present(tmp_path, result):
    root = _copy_tree(tmp_path)
    bench = {
        "device": "test device",
        "rows": [
            {
                "shape": "B8xD4",
                "impl": "haiku",
                "path": "harness",
                "step_s_median": 1e-5,
                "step_s_p10": 9e-6,
                "step_s_p90": 2e-5,
                "ratio_to_jax": 0.75,
                "bandwidth_gbs": None,
            }
        ],
    }
    (root / _generate.PERFORMANCE_JSON).write_text(json.dumps(bench))
    (root / _generate.PERFORMANCE_PNG).unlink(missing_ok=True)
    (root / _generate.PERFORMANCE_MD).unlink()  # its tables need a whole run; here, the site
    assert _generate.SITE_HTML in _generate.check(root, result)
    _generate.write(root, result)
    page = (root / _generate.SITE_HTML).read_text()
    assert 'id="performance-table"' in page and "<td>haiku</td><td>harness</td>" in page
    assert "test device" in page and 'id="performance-plot"' not in page
    (root / _generate.PERFORMANCE_JSON).unlink()
    assert _generate.check(root, result) == [_generate.SITE_HTML]
    _generate.write(root, result)
    assert 'id="performance"' not in (root / _generate.SITE_HTML).read_text()


@ON_311_SET
def test_a_stale_recorded_number_makes_check_fail(tmp_path, result):
    """The performance page's tables are rendered from the recorded runs: a run re-recorded
    (here, one median changed) leaves the page stale until `state-rosetta docs` rewrites it."""
    root = _copy_tree(tmp_path)
    assert _generate.check(root, result) == []
    page = (root / _generate.PERFORMANCE_MD).read_text()
    recorded = root / _generate.PERFORMANCE_JSON
    bench = json.loads(recorded.read_text())
    row = next(r for r in bench["rows"] if r["impl"] == "flax_nnx" and r["path"] == "native")
    cells = f"| {row['model']} | {row['shape']} | flax_nnx | native |"
    old = f"{cells} {row['step_s_median'] * 1e6:.1f} |"
    assert old in page  # the page shows the recorded median, as recorded
    row["step_s_median"] *= 2
    recorded.write_text(json.dumps(bench))
    # The site's table of the run goes stale with it.
    assert _generate.check(root, result) == [_generate.SITE_HTML, _generate.PERFORMANCE_MD]
    _generate.write(root, result)
    new = f"{cells} {row['step_s_median'] * 1e6:.1f} |"
    assert new in (root / _generate.PERFORMANCE_MD).read_text()
    assert _generate.check(root, result) == []


def test_a_generated_block_must_name_a_known_table_and_existing_runs(tmp_path):
    (tmp_path / "docs").mkdir()
    with pytest.raises(_generate.DocsError, match="unknown generated block 'nope'"):
        _generate.render_generated_blocks(
            tmp_path, "<!-- generated: nope a.json -->\n<!-- end generated -->\n"
        )
    with pytest.raises(_generate.DocsError, match=r"names docs/missing\.json, not found"):
        _generate.render_generated_blocks(
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
    with pytest.raises(_generate.DocsError, match=re.escape(message)) as e:
        _generate.parse_regions(text, "f.py")
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
    assert _generate.parse_regions(text) == {"outer": "a = 1\nb = 2\n\nc = 3", "inner": "b = 2"}


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
    got = _generate.parse_regions(text)["a"]
    assert got == "x = 1\n\n\n# said of f\ndef f():\n    return x\n\n\ny = f()"
    nested = "if x:\n    y = 1\n\n    def f(): ...\n"
    assert _generate.top_level_spacing(nested) == nested


def test_a_missing_region_is_an_error_naming_it(tmp_path, capsys):
    root = _copy_tree(tmp_path)
    nnx = root / "impl_flax/_nnx.py"
    nnx.write_text(nnx.read_text().replace("[end:nnx-merge]", "[end:nnx-merged]"))
    assert main(["docs", "--check", "--root", str(root)]) == 2
    assert "impl_flax/_nnx.py" in capsys.readouterr().err
    text = re.sub(r"^ *# --8<-- \[(start|end):nnx-merged?\]\n", "", nnx.read_text(), flags=re.M)
    nnx.write_text(text)
    with pytest.raises(_generate.DocsError, match="missing region 'nnx-merge'"):
        _generate.read_regions(root)


def test_the_site_is_self_contained_with_stable_hooks():
    page = (ROOT / _generate.SITE_HTML).read_text()
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page), "no network resources"
    n = len(_generate.concepts())
    for fw in _generate.frameworks():
        assert len(re.findall(f'class="tab[^"]*" data-framework="{fw}"', page)) == n
        assert len(re.findall(f'class="codeblock" data-framework="{fw}"', page)) == n
    assert 'id="trajectory-plot" src="trajectories.png"' in page
    assert 'id="comparison-table"' in page and "all trajectories agree" in page
    assert (ROOT / _generate.SITE_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
