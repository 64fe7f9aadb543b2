"""Session fixtures: the expensive command-line runs, each made once and shared.

The `cli_run` fixture is a function: `cli_run(*argv)` runs `state-rosetta ARGV --json PATH`
once per distinct command line in the session and returns its exit code, its output and the
run it wrote (raw JSON and `shared.load_run`). The README's commands, the CLI tests and the
model tests all read the same runs, so the default compare runs once, and each 200-step
mlp-bn run once (across pytest-xdist's workers too).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import pytest

import shared
from shared.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _runs_folder() -> Path:
    """Where the session's runs live: one folder for all pytest-xdist workers of a run."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if uid is None:
        return Path(tempfile.mkdtemp(prefix="state-rosetta-tests-"))
    folder = Path(tempfile.gettempdir()) / f"state-rosetta-tests-{uid}"
    folder.mkdir(exist_ok=True)
    return folder


_RUNS = _runs_folder()

# Keras writes keras.json into KERAS_HOME (by default ~/.keras) and matplotlib its caches into
# MPLCONFIGDIR (by default ~/.config and ~/.cache): the tests write nothing under $HOME
# (tests/keras/test_keras_traps.py checks it). Set before anything imports keras or matplotlib;
# the command-line runs in subprocesses inherit them.
os.environ["KERAS_HOME"] = str(_RUNS / "keras-home")
os.environ["MPLCONFIGDIR"] = str(_RUNS / "matplotlib")

# One compilation cache for the session, on disk, shared by both workers: the frameworks
# compile to identical programs (that is the point of the project), and each is compiled once.
# A cached executable is the same program, so it cannot change a number.
jax.config.update("jax_compilation_cache_dir", str(_RUNS / "xla-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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
def _cli_run(*argv: str) -> CliRun:
    """`state-rosetta *argv` (with `--json` added to compare and to checkpoint resume and
    transplant), once per test session.

    It runs in the repository's root, so relative paths (`examples/...`) are the README's.
    Under pytest-xdist the first worker to ask runs it, under a file lock, and the others
    read its result.
    """
    key = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]
    done = _RUNS / f"{key}.done.json"
    with open(_RUNS / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            saved = json.loads(done.read_text())
            path = None if saved["json_path"] is None else Path(saved["json_path"])
            return CliRun(saved["code"], saved["output"], path)
        json_path = None
        args = list(argv)
        writes_json = args[:1] == ["compare"] or args[:2] in (
            ["checkpoint", "resume"],
            ["checkpoint", "transplant"],
        )
        if writes_json and "--json" not in args:
            json_path = _RUNS / f"{key}.json"
            args += ["--json", str(json_path)]
        out = io.StringIO()
        with (
            contextlib.chdir(ROOT),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
        ):
            code = main(args)
        result = CliRun(code, out.getvalue(), json_path)
        record = {"code": code, "output": result.output, "json_path": json_path}
        done.write_text(json.dumps(record, default=str))
        return result


@pytest.fixture(scope="session")
def cli_run() -> Callable[..., CliRun]:
    """`cli_run(*argv)`: the session's run of `state-rosetta ARGV` (see the module's
    docstring), made by the first test or worker that asks for it."""
    return _cli_run


@pytest.fixture(scope="session")
def default_run(cli_run) -> CliRun:
    """`state-rosetta compare`: the Flax page's setup, every framework and loop."""
    return cli_run("compare")


@pytest.fixture(scope="session")
def mlp_bn_run(cli_run) -> CliRun:
    """`state-rosetta compare --model mlp-bn`: 200 aligned sgd steps, every framework, loop."""
    return cli_run("compare", "--model", "mlp-bn")


MLP_BN_FAST_STEPS = "20"
"""The fast tier's mlp-bn run: every framework and loop, 20 sgd steps (its cost is compiling
fifteen trajectories' programs; the 200-step run is the slow tier's)."""


@pytest.fixture(scope="session")
def mlp_bn_short_run(cli_run) -> CliRun:
    """`state-rosetta compare --model mlp-bn --steps 20`: every framework and loop."""
    return cli_run("compare", "--model", "mlp-bn", "--steps", MLP_BN_FAST_STEPS)


@pytest.fixture(scope="session")
def mlp_bn_defaults_run(cli_run) -> CliRun:
    """`state-rosetta compare --model mlp-bn --defaults`: each framework's own defaults."""
    return cli_run("compare", "--model", "mlp-bn", "--defaults")


# --- recording the suite's own time ----------------------------------------------------------
# `ROSETTA_RECORD_SUITE=docs/suite.json pytest` writes the run's wall time and outcome counts
# there, for the README's sentence about the suite (rendered from it by `state-rosetta docs`);
# `{python}` in the path becomes the interpreter's version and `{tier}` `fast` or `slow` (the
# plain `pytest` or `pytest -m slow`): `suite-{python}-{tier}.json`.
# Only the controlling process records (pytest-xdist's workers have `workerinput`).

_SESSION_START: list[float] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _SESSION_START.append(time.perf_counter())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import platform
    import time

    path = os.environ.get("ROSETTA_RECORD_SUITE")
    if not path or hasattr(session.config, "workerinput") or not _SESSION_START:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    counts = {
        outcome: len([r for r in reporter.stats.get(outcome, []) if r.when in ("call", "setup")])
        for outcome in ("passed", "skipped", "failed", "error")
    }
    marks = session.config.getoption("markexpr", "") or ""
    tier = "slow" if marks == "slow" else "fast"
    record = {
        "python": platform.python_version().rsplit(".", 1)[0],
        "command": "pytest" if tier == "fast" else f"pytest -m {marks}",
        "seconds": time.perf_counter() - _SESSION_START[0],
        "exit_status": int(exitstatus),
        "workers": session.config.getoption("numprocesses", None),
        "cpus": os.cpu_count(),
        **counts,
    }
    # One file per interpreter and tier, if asked (`suite-{python}-{tier}.json`).
    path = path.replace("{python}", record["python"]).replace("{tier}", tier)
    shared.core.write_atomic(Path(path), json.dumps(record, indent=1).encode())
