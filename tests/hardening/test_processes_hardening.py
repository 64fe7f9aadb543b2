"""A multi-process run listens only on loopback, and Ctrl-C, SIGTERM or a killed launcher
leave no process and no folder behind (issue 26). Loopback only; every wait has a timeout."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_ENV = "STATE_ROSETTA_LAUNCHER_PID"
"""What the launcher puts in its processes' environment (its process id)."""
LONG = ["compare", "--impls", "jax", "--loop", "harness", "--processes", "2"]
LEFT_S = 10.0
"""How long the run's processes may take to be gone after the launcher is stopped."""


def _launch(tmp_path: Path, *argv: str) -> tuple[subprocess.Popen[str], Path]:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    process = subprocess.Popen(
        [sys.executable, "-m", "shared", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    return process, scratch


def _workers(launcher: int) -> list[int]:
    """The processes that this launcher started, wherever they are now (reparented too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{LAUNCHER_ENV}={launcher}".encode() in environ:
            found.append(int(entry))
    return found


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def _address(hex_address: str, v6: bool) -> str:
    raw = bytes.fromhex(hex_address.split(":")[0])
    if v6:  # four little-endian 32-bit words
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntop(socket.AF_INET, raw[::-1])


def _sockets(pids: list[int]) -> set[tuple[str, str, str]]:
    """(protocol, local address, TCP state) of every socket the processes hold."""
    inodes = set().union(*(_socket_inodes(p) for p in pids)) if pids else set()
    out = set()
    for kind in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{kind}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                out.add((kind, _address(fields[1], kind.endswith("6")), fields[3]))
    return out


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


LISTEN = "0A"
ESTABLISHED = "01"


def _watch(launcher: subprocess.Popen[str], until) -> set[tuple[str, str, str]]:
    """Every socket of the run's processes, sampled until `until(seen)` or the run ends."""
    seen: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + 180
    while launcher.poll() is None and time.monotonic() < deadline and not until(seen):
        seen |= _sockets([launcher.pid, *_workers(launcher.pid)])
        time.sleep(0.05)
    return seen


def _training(seen: set[tuple[str, str, str]]) -> bool:
    """The coordinator and gloo both listen and connections are up: the run is training."""
    listening = {s for s in seen if s[2] == LISTEN}
    return len(listening) >= 2 and any(s[2] == ESTABLISHED for s in seen)


def _gone(launcher: subprocess.Popen[str], scratch: Path) -> None:
    """Within `LEFT_S`: the launcher ended, no process of the run is left, and no folder."""
    deadline = time.monotonic() + LEFT_S
    while _workers(launcher.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _workers(launcher.pid) == []
    assert sorted(p.name for p in scratch.iterdir() if "processes" in p.name) == []


def _stop_run(launcher: subprocess.Popen[str]) -> None:
    if launcher.poll() is None:
        launcher.kill()
    launcher.communicate(timeout=30)
    for pid in _workers(launcher.pid):
        os.kill(pid, signal.SIGKILL)


def test_sigint_stops_every_process_and_every_socket_was_loopback(tmp_path):
    launcher, scratch = _launch(tmp_path, *LONG, "--steps", "100000")
    try:
        seen = _watch(launcher, _training)
        assert launcher.poll() is None and _training(seen), seen
        assert all(_loopback(address) for _, address, _ in seen), seen
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=LEFT_S)
        assert launcher.returncode == 130
        assert err.strip().splitlines()[-1:] == ["state-rosetta: interrupted"]
        _gone(launcher, scratch)
    finally:
        _stop_run(launcher)


@pytest.mark.slow
def test_sigterm_stops_every_process(tmp_path):
    launcher, scratch = _launch(tmp_path, *LONG, "--steps", "100000")
    try:
        _watch(launcher, _training)
        launcher.send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=LEFT_S)
        assert launcher.returncode == 128 + signal.SIGTERM
        assert "stopped by SIGTERM; every process was stopped" in err
        _gone(launcher, scratch)
    finally:
        _stop_run(launcher)


@pytest.mark.slow
def test_a_killed_launcher_takes_its_processes_with_it(tmp_path):
    launcher, scratch = _launch(tmp_path, *LONG, "--steps", "100000")
    try:
        _watch(launcher, _training)
        launcher.send_signal(signal.SIGKILL)  # no handler runs: Linux ends the workers
        launcher.communicate(timeout=LEFT_S)
        _gone(launcher, scratch)
    finally:
        _stop_run(launcher)


@pytest.mark.slow
def test_every_socket_of_a_whole_two_process_run_is_loopback(tmp_path):
    launcher, _ = _launch(tmp_path, *LONG)
    try:
        seen = _watch(launcher, lambda seen: False)
        assert launcher.wait(timeout=60) == 0
        assert any(state == LISTEN for _, _, state in seen), seen
        assert all(_loopback(address) for _, address, _ in seen), seen
    finally:
        _stop_run(launcher)
