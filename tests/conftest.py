"""Session fixtures: the expensive command-line runs, each made once and shared.

`cli_run(*argv)` runs `state-rosetta ARGV --json PATH` once per distinct command line in the
session and returns its exit code, its output and the run it wrote (raw JSON and
`shared.load_run`). The README's commands, the CLI tests and the model tests all read the
same runs, so the default compare runs once, and each 200-step mlp-bn run once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import shared
from shared.cli import main

_RUNS = Path(tempfile.mkdtemp(prefix="state-rosetta-tests-"))
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliRun:
    """One command-line run: exit code, what it printed, and the JSON it wrote (if any)."""

    code: int
    output: str
    json_path: Path | None

    @functools.cached_property
    def json(self) -> dict[str, Any]:
        assert self.json_path is not None and self.json_path.is_file(), self.output[-2000:]
        return json.loads(self.json_path.read_text())

    @functools.cached_property
    def run(self) -> shared.SavedRun:
        assert self.json_path is not None
        return shared.load_run(self.json_path)


@functools.cache
def cli_run(*argv: str) -> CliRun:
    """`state-rosetta *argv` (with `--json` added to compare), once per session.

    It runs in the repository's root, so relative paths (`examples/...`) are the README's.
    """
    json_path = None
    args = list(argv)
    if args and args[0] == "compare" and "--json" not in args:
        json_path = _RUNS / f"run{len(list(_RUNS.glob('run*.json')))}.json"
        args += ["--json", str(json_path)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return CliRun(code, out.getvalue() + err.getvalue(), json_path)


@pytest.fixture(scope="session")
def default_run() -> CliRun:
    """`state-rosetta compare`: the Flax page's setup, every framework and loop."""
    return cli_run("compare")


@pytest.fixture(scope="session")
def mlp_bn_run() -> CliRun:
    """`state-rosetta compare --model mlp-bn`: 200 aligned sgd steps, every framework, loop."""
    return cli_run("compare", "--model", "mlp-bn")


@pytest.fixture(scope="session")
def mlp_bn_defaults_run() -> CliRun:
    """`state-rosetta compare --model mlp-bn --defaults`: each framework's own defaults."""
    return cli_run("compare", "--model", "mlp-bn", "--defaults")
