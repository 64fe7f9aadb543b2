"""`--processes P`: the same run on P local processes, one global mesh, one report.

The launcher picks a free port on 127.0.0.1 (the coordinator binds only there), starts P
copies of the command (each with `--devices-per-process` forced host devices and gloo CPU
collectives), watches them, and relays process 0's report; Ctrl-C or SIGTERM stop them all,
and no log folder is left. A process that dies makes the launcher stop the others at once
and name it: the survivors would otherwise block in a collective until JAX's heartbeat
timeout, then abort without a Python error.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO

from rich.console import Console

from ._devices import with_device_count

EXIT_FAILED = 1
REPORTED = (0, 1)
"""Exit codes of a process that finished its comparison (it agrees, or it does not)."""
POLL_S = 0.2
GRACE_S = 5.0
"""How long the survivors get to finish after one process has failed, before they are
killed."""
USAGE_GRACE_S = 30.0
"""The same after a process refused the command (exit 2): every process checks the same
things and should refuse too, but on a busy machine the last one may need longer than
`GRACE_S` (measured: a suite run under load stopped process 0 before its own refusal,
and the launcher reported a failure instead of relaying the usage error)."""
HEARTBEAT_S = 10
"""JAX's heartbeat timeout for the launched processes (its default is 100 s)."""
STOP_GRACE_S = 2.0
"""How long a process gets to end after SIGTERM before SIGKILL, when the launcher stops."""
LAUNCHER_ENV = "STATE_ROSETTA_LAUNCHER_PID"
"""The launcher's process id, for its processes to die with it."""
PR_SET_PDEATHSIG = 1
"""Linux's prctl option: a signal for this process when its parent dies."""
TIMEOUT_S = 1800.0
"""The longest a multi-process run may take before every process is killed."""


class ProcessError(RuntimeError):
    """A launched process failed; the message names it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Is something already bound to `port` on 127.0.0.1?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _child_argv(argv: list[str]) -> list[str]:
    """The command line without the launcher's own flags (and their values)."""
    drop = {
        "--processes",
        "--devices-per-process",
        "--devices",
        "--process-id",
        "--coordinator",
        "--port",
    }
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def launch(args: argparse.Namespace, console: Console) -> int:
    """Start `args.processes` processes, wait for all, relay process 0's output.

    Returns process 0's exit code when every process ends normally; 1 with an error naming
    the first process that failed otherwise (the others are stopped). Ctrl-C or SIGTERM stop
    every process before the launcher ends ([`Stopped`][] for SIGTERM).
    """
    processes = args.processes
    per = args.devices_per_process or 1
    if processes < 1 or per < 1:
        raise ValueError(f"--processes {processes} --devices-per-process {per}: expected both >= 1")
    total = processes * per
    if args.devices not in (1, total):
        raise ValueError(
            f"--devices {args.devices} with --processes {processes} --devices-per-process "
            f"{per}: expected {total} (processes x devices per process) or no --devices"
        )
    port = free_port() if args.port is None else args.port
    if args.port is not None and port_in_use(port):
        raise ValueError(
            f"--port {port}: 127.0.0.1:{port} is already in use; expected a free port (or "
            "leave --port out: the launcher picks one)"
        )
    base = [
        *_child_argv(args.argv),
        "--devices",
        str(total),
        "--processes",
        str(processes),
        "--devices-per-process",
        str(per),
        "--coordinator",
        f"127.0.0.1:{port}",
    ]
    env = with_device_count(os.environ, per)
    env["JAX_PLATFORMS"] = "cpu"
    env[LAUNCHER_ENV] = str(os.getpid())
    # The logs are files without a name (unlinked at once): whatever ends the launcher, even
    # SIGKILL, leaves no folder behind.
    logs = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in range(processes)]
    children: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for i, (out, err) in enumerate(logs):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "shared", *base, "--process-id", str(i)],
                    env=env,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # killed as a group, never left behind
                )
            )
        failed = _wait(children)
    finally:  # Ctrl-C, SIGTERM or an error here: no process outlives the launcher
        signal.signal(signal.SIGTERM, previous)
        _stop_all(children)
    text = [(_read(out), _read(err)) for out, err in logs]
    for out, err in logs:
        out.close()
        err.close()
    sys.stdout.write(text[0][0])
    if failed is None:
        sys.stderr.write(text[0][1])
        return int(children[0].returncode)
    codes = {c.returncode for c in children}
    if codes == {2}:  # every process refused the command line: a usage error, relayed
        sys.stderr.write(text[0][1])
        return 2
    index, how = failed
    tail = _last_lines(text[index][1])
    console.print(
        f"[bold red]process {index} of {processes} {how}[/]; the others were stopped"
        + (f"\n{tail}" if tail else "")
    )
    return EXIT_FAILED


class Stopped(KeyboardInterrupt):
    """SIGTERM to the launcher: it stops every process, as for Ctrl-C."""

    exit_code = 128 + signal.SIGTERM


def _stop(signum: int, frame: object) -> None:
    raise Stopped(f"stopped by {signal.Signals(signum).name}; every process was stopped")


def die_with_launcher() -> None:
    """In a launched process, first thing: ask Linux to SIGKILL it when the launcher dies
    (`PR_SET_PDEATHSIG`), so that even a SIGKILL of the launcher leaves no process behind.

    Here rather than in a `preexec_fn`, which would run Python between fork and exec in a
    launcher whose JAX threads may hold locks.
    """
    parent = os.environ.get(LAUNCHER_ENV)
    if parent is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the launcher's `finally` still stops it
        return
    if os.getppid() != int(parent):  # the launcher died before the request was made
        os._exit(EXIT_FAILED)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every running child's process group, SIGKILL what is left after a grace."""
    running = [c for c in children if c.poll() is None]
    for c in running:
        _signal_group(c, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for c in running:
        try:
            c.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(c, signal.SIGKILL)
            c.wait()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def _last_lines(text: str, n: int = 8) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def _wait(children: list[subprocess.Popen[bytes]]) -> tuple[int, str] | None:
    """Wait for every child; at the first failure stop the others. Returns (index, how) of
    the first failure, or `None`."""
    deadline = time.monotonic() + TIMEOUT_S
    failed: tuple[int, str] | None = None
    while True:
        codes = [c.poll() for c in children]
        if failed is None:
            for i, code in enumerate(codes):
                # 0 and 1 are a finished comparison (agree or not); anything else, or a
                # signal, is a process that failed.
                if code is not None and code not in REPORTED:
                    failed = (i, _describe_exit(code))
                    grace = USAGE_GRACE_S if code == 2 else GRACE_S
                    deadline = min(deadline, time.monotonic() + grace)
                    break
        if all(code is not None for code in codes):
            return failed
        if time.monotonic() > deadline:
            for c in children:
                if c.poll() is None:
                    _signal_group(c, signal.SIGKILL)
            for c in children:
                c.wait()
            if failed is None:
                return (0, f"did not finish within {TIMEOUT_S:.0f} s")
            return failed
        time.sleep(POLL_S)


def join_processes(args: argparse.Namespace) -> None:
    """In a launched process: join the others at the coordinator."""
    die_with_launcher()
    if args.process_id is None or args.coordinator is None:
        raise ValueError(
            "--devices-per-process: use it with --processes P (the launcher starts the "
            "processes itself)"
        )
    join(args.coordinator, args.processes, args.process_id)


def join(coordinator: str, processes: int, process_id: int) -> None:
    """gloo CPU collectives, then `jax.distributed.initialize` with a short heartbeat."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        # Without it the coordination service listens on every interface ([::]:PORT).
        coordinator_bind_address=coordinator,
        num_processes=processes,
        process_id=process_id,
        heartbeat_timeout_seconds=HEARTBEAT_S,
        initialization_timeout=60,
    )
