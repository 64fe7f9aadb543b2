"""`--devices N` on CPU: N forced host devices, set before JAX starts, else in a child."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

FLAG = "--xla_force_host_platform_device_count"


def with_device_count(env: Mapping[str, str], devices: int) -> dict[str, str]:
    """`env` with XLA_FLAGS asking for `devices` host devices (any earlier count replaced)."""
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(FLAG)]
    return {**env, "XLA_FLAGS": " ".join([*flags, f"{FLAG}={devices}"])}


def ensure_devices(devices: int, argv: Sequence[str]) -> int | None:
    """Make `devices` JAX devices visible to this command.

    Before JAX has started, the flag is set in this process (`None`: go on here). Once it has
    started with fewer devices (a Python session, pytest), XLA cannot add any: the command
    runs again in a child process with the flag set, its output is relayed, and its exit
    code returned.
    """
    import jax
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        os.environ.update(with_device_count(os.environ, devices))
        return None
    if jax.device_count() >= devices:
        return None
    child = subprocess.run(
        [sys.executable, "-m", "shared", *argv],
        env=with_device_count(os.environ, devices),
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(child.stdout)
    sys.stderr.write(child.stderr)
    return child.returncode
