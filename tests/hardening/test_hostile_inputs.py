"""Hostile and clumsy inputs (issue 26): each one ends with the exit-code contract's code, an
error in one line, and no traceback; nothing is replaced, imported or left running.

The contract: 0 agree, 1 diverged or a trajectory failed, 2 bad input, 3 an internal error,
130 interrupted. Most cases call the command line in this process (`main`); the ones where
the process boundary is the point (a plug-in's `sys.exit`) run `python -m shared`.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import shared
from shared.cli import COMMANDS, Command, main

HERE = Path(__file__).resolve().parent
PLUGINS = HERE / "plugins"
ROOT = HERE.parents[1]
QUICK = ["--impls", "jax", "--loop", "harness", "--steps", "3"]
AT_ONCE_S = 10
"""A bad argument is refused within this: nothing trained, no device made, nothing waited for
(a loaded 2-core machine included)."""
BEFORE_THE_RUN_S = 5
"""A bad output is refused within this, before the run rather than after it."""
"""The smallest compare run: one implementation, one loop, three steps."""


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def _in_process(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Outcome:
    code = main(argv)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def _subprocess(argv: list[str], cwd: Path, **env: str) -> Outcome:
    done = subprocess.run(
        [sys.executable, "-m", "shared", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_contract(outcome: Outcome, code: int) -> str:
    """The code, no traceback, and for an error exactly one line on stderr (returned)."""
    assert outcome.code == code, (outcome.out[-2000:], outcome.err[-2000:])
    assert "Traceback" not in outcome.out + outcome.err
    lines = outcome.err.strip().splitlines()
    if code in (0, 1):
        assert lines == [], lines
        return ""
    assert len(lines) == 1 and lines[0].startswith("state-rosetta: "), lines
    return lines[0]


# --- saved runs to spoil ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_result() -> shared.CompareResult:
    return shared.run_compare(shared.CompareOptions(impls=("jax",), loops=("harness",), steps=3))


def _saved(result: shared.CompareResult, path: Path, *, sidecar: bool = False) -> Path:
    shared.save_run(
        result.to_json(arrays=False),
        path,
        result.trajectories,
        inline_limit=0 if sidecar else 10**9,
    )
    return path


def _edited(path: Path, edit: Callable[[dict], object]) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + shared.core.SIDECAR_SUFFIX)


def _replace_array(npz: Path, key: str, array: np.ndarray) -> None:
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = array
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    npz.write_bytes(buffer.getvalue())


def _first_ref(path: Path) -> str:
    data = json.loads(path.read_text())
    return data["trajectories"]["jax/harness"]["params"]["bias"]["sidecar"]


def _truncated_sidecar(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json", sidecar=True)
    side = _sidecar(run)
    side.write_bytes(side.read_bytes()[: side.stat().st_size // 2])
    return run


def _corrupt_sidecar(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json", sidecar=True)
    side = _sidecar(run)
    data = bytearray(side.read_bytes())
    for i in range(len(data) // 4, len(data) // 4 + 16):  # in a member, not the directory
        data[i] ^= 0xFF
    side.write_bytes(bytes(data))
    return run


def _sidecar_shape_lies(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json", sidecar=True)
    _replace_array(_sidecar(run), _first_ref(run), np.zeros((4, 5), np.float32))
    return run


def _sidecar_complex(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json", sidecar=True)
    _replace_array(_sidecar(run), _first_ref(run), np.zeros((4, 4), np.complex64))
    return run


def _nested(tmp: Path, result: shared.CompareResult) -> Path:
    path = tmp / "run.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _number(tmp: Path, result: shared.CompareResult) -> Path:
    path = tmp / "run.json"
    path.write_text("42")
    return path


def _without(part: str) -> Callable[[Path, shared.CompareResult], Path]:
    def spoil(tmp: Path, result: shared.CompareResult) -> Path:
        run = _saved(result, tmp / "run.json")
        return _edited(run, lambda d: d["trajectories"]["jax/harness"].pop(part))

    return spoil


def _list_for(key: str) -> Callable[[Path, shared.CompareResult], Path]:
    def spoil(tmp: Path, result: shared.CompareResult) -> Path:
        run = _saved(result, tmp / "run.json")
        return _edited(run, lambda d: d.__setitem__(key, []))

    return spoil


def _params_a_list(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json")
    return _edited(run, lambda d: d["trajectories"]["jax/harness"].__setitem__("params", [1]))


def _short_loss(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json")
    return _edited(run, lambda d: d["trajectories"]["jax/harness"]["loss"].pop())


def _strings_for_numbers(tmp: Path, result: shared.CompareResult) -> Path:
    run = _saved(result, tmp / "run.json")
    return _edited(run, lambda d: d["trajectories"]["jax/harness"]["loss"].__setitem__(0, "1.5"))


SPOILED_RUNS = {
    "sidecar truncated (BadZipFile)": _truncated_sidecar,
    "sidecar corrupted": _corrupt_sidecar,
    "sidecar array of another shape": _sidecar_shape_lies,
    "sidecar of complex data": _sidecar_complex,
    "JSON nested 100,000 deep": _nested,
    "JSON whose top level is a number": _number,
    "trajectory without loss": _without("loss"),
    "trajectory without params": _without("params"),
    "trajectories a list": _list_for("trajectories"),
    "config a list": _list_for("config"),
    "params a list": _params_a_list,
    "a loss list one short": _short_loss,
    "a string where a number goes": _strings_for_numbers,
}


@pytest.mark.parametrize("spoil", list(SPOILED_RUNS.values()), ids=list(SPOILED_RUNS))
def test_a_spoiled_run_is_refused_by_diff(tmp_path, capsys, small_result, spoil):
    good = _saved(small_result, tmp_path / "good.json")
    bad_folder = tmp_path / "bad"
    bad_folder.mkdir()
    bad = spoil(bad_folder, small_result)
    line = assert_contract(_in_process(capsys, ["diff", str(bad), str(good)]), 2)
    assert str(bad) in line


BOMB_MIB = 256


def _peak_rss_mib(argv: list[str]) -> float:
    """The peak memory of `python -m shared ARGV`, alone in a process of its own."""
    code = (
        "import resource, subprocess, sys; "
        f"subprocess.run([sys.executable, '-m', 'shared', *{argv!r}], check=True, "
        "stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return float(done.stdout)


def test_diff_decompresses_only_the_arrays_it_needs(tmp_path, small_result):
    """A sidecar of a few hundred KB holding 256 MiB of zeros that nothing names: once read
    whole (a 1 MB sidecar took 1.27 GB), now never decompressed."""
    clean = _saved(small_result, tmp_path / "clean.json", sidecar=True)
    bombed = _saved(small_result, tmp_path / "bombed.json", sidecar=True)
    with zipfile.ZipFile(_sidecar(bombed), "a", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("unnamed.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": (BOMB_MIB * 2**18,)}
            np.lib.format.write_array_header_1_0(f, header)
            for _ in range(BOMB_MIB):
                f.write(bytes(2**20))
    assert _sidecar(bombed).stat().st_size < 2**20 * BOMB_MIB / 100
    base = _peak_rss_mib(["diff", str(clean), str(clean)])
    peak = _peak_rss_mib(["diff", str(bombed), str(clean)])
    assert peak < base + BOMB_MIB / 2, (base, peak)


# --- command lines ----------------------------------------------------------------------------

BAD_ARGUMENTS = {
    "--loop ''": (["compare", "--loop", ""], "--loop"),
    "--port -1": (["compare", "--processes", "2", "--port", "-1"], "--port: expected 1..65535"),
    "--port 70000": (["compare", "--processes", "2", "--port", "70000"], "--port"),
    "--port 0": (["compare", "--processes", "2", "--port", "0"], "--port"),
    "--processes 0": (["compare", "--processes", "0"], "--processes: expected an integer >= 1"),
    "--devices-per-process 0": (
        ["compare", "--processes", "2", "--devices-per-process", "0"],
        "--devices-per-process",
    ),
    "--seed 2**63": (["compare", "--seed", str(2**63)], "--seed: expected 0 <= SEED < 2**63"),
    "--seed -1": (["compare", "--seed", "-1"], "--seed"),
    "--steps 10000000": (["compare", "--steps", "10000000"], "this run would need about"),
    "--devices 100000": (["compare", "--devices", "100000"], "does not divide across 100000"),
    "bench --devices ''": (["bench", "--devices", ""], "expected counts >= 1"),
    "bench --processes ','": (["bench", "--devices", "2", "--processes", ","], "counts >= 1"),
    "bench --depth ''": (["bench", "--depth", ""], "two or more distinct depths"),
    "checkpoint save --every 0": (
        ["checkpoint", "save", "ckpt", "--impl", "jax", "--every", "0"],
        "--every: expected an integer >= 1",
    ),
}


@pytest.mark.parametrize("argv, message", list(BAD_ARGUMENTS.values()), ids=list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_at_once(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    line = assert_contract(_in_process(capsys, argv), 2)
    assert message in line
    assert time.monotonic() - start < AT_ONCE_S
    assert list(tmp_path.iterdir()) == []


def test_the_memory_refusal_names_the_estimate_and_the_memory(capsys):
    line = assert_contract(_in_process(capsys, ["compare", "--steps", "10000000"]), 2)
    assert "trajectories" in line and "GiB of memory it may take (this machine's)" in line
    assert "--force" in line


def test_force_runs_what_the_memory_guard_refuses(capsys, monkeypatch):
    monkeypatch.setenv("STATE_ROSETTA_MEMORY_GIB", "0.01")
    line = assert_contract(_in_process(capsys, ["compare", *QUICK]), 2)
    assert "more than the 0.01 GiB of memory it may take (STATE_ROSETTA_MEMORY_GIB)" in line
    assert_contract(_in_process(capsys, ["compare", *QUICK, "--force"]), 0)


@pytest.mark.slow
def test_a_huge_feature_count_is_refused_before_its_data_is_made(capsys):
    # The data (10 x 8 x 10^8 float32, 32 GB, twice) would exhaust the machine; the guard
    # measures one example of one step and refuses.
    line = assert_contract(_in_process(capsys, ["compare", "--features", "100000000"]), 2)
    assert "this run would need about" in line


def test_checkpoint_resume_into_a_file_is_refused(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("mine")
    argv = ["checkpoint", "resume", "--impls", "jax", "--steps", "4", "--dir", str(file)]
    assert "not a folder" in assert_contract(_in_process(capsys, argv), 2)
    assert file.read_text() == "mine"


# --- outputs ------------------------------------------------------------------------------------


def _fifo(tmp: Path) -> Path:
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


def _read_only(tmp: Path) -> Path:
    path = tmp / "read-only.json"
    path.write_text("keep")
    path.chmod(0o444)
    return path


def _device(tmp: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device node takes root")
    path = tmp / "null"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    return path


def _folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    return tmp / "folder"


def _link(tmp: Path) -> Path:
    target = tmp / "target.json"
    target.write_text("keep")
    (tmp / "link.json").symlink_to(target)
    return tmp / "link.json"


BAD_OUTPUTS = {
    "a folder": (_folder, "it is a folder"),
    "the current folder, '.'": (lambda tmp: Path("."), "it is a folder"),  # no name: no sidecar
    "a FIFO": (_fifo, "it is a FIFO"),
    "a read-only file": (_read_only, "it is read-only (mode 0444)"),
    "a character device": (_device, "it is a character device"),
    "a symbolic link": (_link, "it is a symbolic link"),
    "/proc/self/fd/1": (lambda tmp: Path("/proc/self/fd/1"), "it is a symbolic link"),
    "a folder no file can be made in": (lambda tmp: Path("/proc/self/run.json"), "no file"),
    "a missing folder": (lambda tmp: tmp / "missing" / "run.json", "no such directory"),
}


def _state(path: Path) -> tuple[int, bytes | None]:
    mode = os.lstat(path).st_mode if os.path.lexists(path) else 0
    content = path.read_bytes() if stat.S_ISREG(mode) else None
    return mode, content


@pytest.mark.parametrize("make, message", list(BAD_OUTPUTS.values()), ids=list(BAD_OUTPUTS))
@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_a_bad_output_is_refused_before_the_run_and_not_replaced(
    tmp_path, capsys, make, message, option
):
    path = make(tmp_path)
    before = _state(path)
    start = time.monotonic()
    line = assert_contract(_in_process(capsys, ["compare", *QUICK, option, str(path)]), 2)
    assert message in line and str(path) in line
    assert _state(path) == before
    assert time.monotonic() - start < BEFORE_THE_RUN_S


def test_checkpoint_continue_into_a_missing_folder_is_refused_first(tmp_path, capsys):
    argv = ["checkpoint", "continue", str(tmp_path / "none"), "--out", str(tmp_path / "no/x.npz")]
    assert "no such directory" in assert_contract(_in_process(capsys, argv), 2)


# --- plug-ins -------------------------------------------------------------------------------------


def test_a_plugin_that_exits_at_import_is_a_bad_argument(tmp_path):
    argv = ["compare", *QUICK, "--impl", f"{PLUGINS / 'exit_at_import.py'}:Anything"]
    line = assert_contract(_subprocess(argv, tmp_path), 2)
    assert "cannot import" in line and "SystemExit: 0" in line


@pytest.mark.parametrize("factory", ["exit_in_factory", "base_exception_in_factory"])
def test_a_plugin_whose_factory_ends_the_program_is_a_bad_argument(capsys, factory):
    argv = ["compare", *QUICK, "--impl", f"{PLUGINS / 'quitters.py'}:{factory}"]
    line = assert_contract(_in_process(capsys, argv), 2)
    assert f"implementation {PLUGINS / 'quitters.py'}:{factory}" in line


def test_a_plugin_that_exits_in_apply_is_a_failed_trajectory(tmp_path):
    argv = ["compare", *QUICK, "--impl", f"{PLUGINS / 'quitters.py'}:ExitInApply"]
    outcome = _subprocess(argv, tmp_path)
    assert_contract(outcome, 1)
    assert "exit_in_apply/harness failed: PluginError: training exit_in_apply/harness raised " in (
        " ".join(outcome.out.split())
    )


def test_a_plugin_that_raises_keyboard_interrupt_stops_the_run(capsys):
    argv = ["compare", *QUICK, "--impl", f"{PLUGINS / 'quitters.py'}:InterruptInApply"]
    line = assert_contract(_in_process(capsys, argv), 130)
    assert line == "state-rosetta: interrupted in training interrupt_in_apply/harness"


# --- the terminal and internal errors ------------------------------------------------------------


def test_control_characters_in_a_file_never_reach_the_terminal(tmp_path, capsys, small_result):
    evil = "jax\x1b]0;pwned\x07\x1b[2J\x9b31m/harness"
    run = _saved(small_result, tmp_path / "run.json")
    _edited(run, lambda d: d["trajectories"].__setitem__(evil, d["trajectories"]["jax/harness"]))
    outcome = _in_process(capsys, ["diff", str(run), str(run)])
    assert_contract(outcome, 0)
    assert "\x1b" not in outcome.out and "\x9b" not in outcome.out and "\x07" not in outcome.out
    assert "jax\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m/harness" in outcome.out


def test_an_internal_error_is_one_line_with_exit_3(capsys, monkeypatch):
    def broken(args, console):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setitem(COMMANDS, "diff", Command(COMMANDS["diff"].add_parser, broken))
    line = assert_contract(_in_process(capsys, ["diff", "a", "b"]), 3)
    assert line == (
        "state-rosetta: internal error: RuntimeError: a bug "
        "(set STATE_ROSETTA_TRACEBACK=1 for the traceback)"
    )
    monkeypatch.setenv("STATE_ROSETTA_TRACEBACK", "1")
    assert main(["diff", "a", "b"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_help_still_exits_0(capsys):
    with pytest.raises(SystemExit) as done:
        main(["compare", "--help"])
    assert done.value.code == 0
    assert "--force" in capsys.readouterr().out
