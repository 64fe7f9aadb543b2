"""`compare --processes P --devices-per-process N`: one run on P local processes.

Every process is started on 127.0.0.1 by the launcher, which the tests run as a user would;
each test ends by itself (the launcher's own deadline, and a subprocess timeout).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shared
from shared.models import bias_adder

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT_S = 240
"""The longest a launch here may take before the test gives up (a run takes about 20 s)."""
STOPPED_WITHIN_S = 60
"""How soon a run one of whose processes died must be over (docs/parallel.md: the launcher
gives the others 5 s; without it they would wait for JAX's heartbeat timeout)."""
COMMON = ("--impls", "jax,haiku", "--loop", "harness,scan", "--batch", "16", "--steps", "6")


STARTUP = Path(__file__).resolve().parent / "startup"
"""A `sitecustomize` that installs the fault a test asks for in every process of the run."""


def _launch(tmp_path: Path, fault: str | None = None, *extra: str):
    env = {**os.environ}
    if fault is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STARTUP), env.get("PYTHONPATH")]))
        env["ROSETTA_TEST_FAULT"] = fault
    marker = tmp_path / "run.json"  # a unique path in every process's command line
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared",
            "compare",
            "--processes",
            "2",
            "--devices-per-process",
            "4",
            *COMMON,
            "--json",
            str(marker),
            *extra,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT_S,
    )
    return proc, time.monotonic() - start, marker


def _left_running(marker: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(marker) in cmdline:
                pids.append(int(entry.name))
    return pids


def test_two_processes_of_four_devices_equal_one_process_of_eight(cli_run, tmp_path):
    proc, _, path = _launch(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all trajectories agree" in proc.stdout  # process 0's report, relayed
    multi = shared.load_run(path)
    assert multi.config["processes"] == 2 and multi.config["devices"] == 8
    single = cli_run("compare", "--devices", "8", *COMMON)
    assert single.code == 0, single.output[-3000:]
    for key, trajectory in multi.trajectories.items():
        if key.endswith("1-device") or key.startswith("oracle"):
            continue
        # gloo's all-reduce adds the replicas in another order than one process's: the
        # model's stated data-parallel bound, not bitwise.
        result = shared.compare(trajectory, single.run.trajectories[key], bias_adder.DEVICES)
        assert result.first_divergence is None, (key, result)
    assert _left_running(path) == []


@pytest.mark.slow  # a third 2-process launch; the fast tier keeps the agreeing one
def test_a_killed_process_stops_the_run_within_a_minute_and_is_named(tmp_path):
    proc, seconds, path = _launch(tmp_path, "crash:1:3")
    assert proc.returncode == 1
    assert seconds < STOPPED_WITHIN_S, seconds
    assert "process 1 of 2 was killed by SIGKILL; the others were stopped" in proc.stdout
    assert not path.exists()  # no report from a run that did not finish
    assert _left_running(path) == []


@pytest.mark.slow  # a fourth 2-process launch
def test_processes_holding_different_batches_are_refused(tmp_path):
    proc, _, path = _launch(tmp_path, "batch:1")
    # Every process sees the mismatch (the digests are all-gathered) and refuses: exit 2.
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the batches of process(es) 1 differ from process 0's" in proc.stderr
    assert not path.exists()
    assert _left_running(path) == []


def test_a_coordinator_port_in_use_is_reported(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, _, _ = _launch(tmp_path, None, "--port", str(port))
    assert proc.returncode == 2
    assert f"--port {port}: 127.0.0.1:{port} is already in use" in proc.stderr


# The agreeing launch is the slow tier's (the fast tier launches two processes above).
@pytest.mark.parametrize("flags", [("--devices", "6"), pytest.param((), marks=pytest.mark.slow)])
def test_device_counts_that_do_not_match_are_refused(cli_run, flags):
    # The second is docs/parallel.md's command, which must agree.
    run = cli_run(
        "compare",
        "--processes",
        "2",
        "--devices-per-process",
        "4",
        "--impls",
        "jax,haiku",
        *flags,
    )
    if flags:
        assert run.code == 2
        assert "expected 8 (processes x devices per process)" in run.output
    else:
        assert run.code == 0, run.output[-3000:]
