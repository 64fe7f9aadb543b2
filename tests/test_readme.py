"""Every Python code block in README.md runs, and the quick start is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(block):
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_quick_start_is_two_commands_and_ci_runs_the_test_command():
    bash = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert [b.strip() for b in bash[:2]] == [
        "pip install -e . && state-rosetta compare",
        'pip install -e ".[test]" && pytest',
    ]
    assert 'pip install -e ".[test]" && pytest' in (ROOT / ".ci" / "run").read_text()
