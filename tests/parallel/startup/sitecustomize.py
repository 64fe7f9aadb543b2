"""Start-up hook of the multi-process tests' processes: installs the fault a test asks for.

`tests/parallel/test_processes.py` puts this folder first on `PYTHONPATH`, so that Python
imports this module when each process of the run starts (the launcher, and every process it
starts with `python -m shared`), and sets `FAULT` to one of:

- `crash:P:STEP`: process P kills itself with SIGKILL after training step STEP;
- `batch:P`: process P changes one number of its batches.

The run reads no setting for faults: it calls its fault hooks (`shared.core.FaultHooks`),
which do nothing unless a test installs its own, as this does. Without `FAULT` it imports
nothing.
"""

from __future__ import annotations

import os
import signal
from typing import Any

FAULT = "ROSETTA_TEST_FAULT"


def install(kind: str, process: str, *rest: str) -> None:
    """Install, in this process, the hooks that break process `process` of the run."""
    import jax
    import numpy as np

    from shared.core import FaultHooks, install_fault_hooks

    def targeted() -> bool:
        return jax.process_count() > 1 and jax.process_index() == int(process)

    class Injected(FaultHooks):
        def batches(self, batches: Any) -> Any:
            if kind != "batch" or not targeted():
                return batches

            def nudge(leaf: Any) -> Any:
                host = np.array(leaf)  # a copy; not contiguous where the data is a broadcast
                if np.issubdtype(host.dtype, np.floating):
                    host.flat[0] += 1  # (`reshape(-1)` would be a copy of such an array)
                return host

            return jax.tree.map(nudge, batches)

        def after_step(self, step: int) -> None:
            if kind == "crash" and targeted() and step == int(rest[0]):
                os.kill(os.getpid(), signal.SIGKILL)

    install_fault_hooks(Injected())


if os.environ.get(FAULT):
    install(*os.environ[FAULT].split(":"))
