"""Every Python code block in README.md runs, and the quick start is what CI runs."""

from __future__ import annotations

import re
import shlex
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


def _shell_commands() -> list[str]:
    """Every `state-rosetta` command in the bash blocks of the README and docs/*.md, once."""
    texts = [README, *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))]
    commands: dict[str, None] = {}
    for text in texts:
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
            for line in block.splitlines():
                for part in line.split("#", 1)[0].split("&&"):
                    part = part.strip()
                    # `pip install ...` and `pytest` are the quick start: .ci/run runs them.
                    if part.startswith("state-rosetta"):
                        commands[part] = None
    return list(commands)


SHELL_COMMANDS = _shell_commands()


def test_docs_show_shell_commands():
    assert "state-rosetta compare" in SHELL_COMMANDS
    assert any("--model mlp-bn" in c for c in SHELL_COMMANDS)


@pytest.mark.parametrize("command", SHELL_COMMANDS)
def test_shell_command_from_the_docs_runs(command, capsys):
    from shared.cli import main

    args = shlex.split(command)[1:]
    # --defaults compares each framework as it comes: they disagree, by design (the docs say so).
    expected = 1 if "--defaults" in args else 0
    assert main(args) == expected, capsys.readouterr().out[-2000:]
