"""Fault hooks: the places where a test may break a run on purpose.

The multi-process tests need a process that dies mid-run and processes whose data differ.
A run calls these hooks (on its batches once made, after each step of a data-parallel run),
and by default they do nothing. A test installs its own in each process it starts
(`tests/parallel/startup/sitecustomize.py`); nothing in a run reads an environment variable
or any other setting for them.
"""

from __future__ import annotations

from typing import Any


class FaultHooks:
    """Where a run may be broken; every hook here does nothing. Subclass it, override the
    hooks wanted and [`install_fault_hooks`][] an instance."""

    def batches(self, batches: Any) -> Any:
        """The run's batches, once made (stacked, one per step); returns those to train on."""
        return batches

    def after_step(self, step: int) -> None:
        """Called after step `step` (1-based) of a data-parallel run trained step by step."""


_INSTALLED = [FaultHooks()]


def fault_hooks() -> FaultHooks:
    """The hooks installed in this process (the ones that do nothing, unless a test's)."""
    return _INSTALLED[0]


def install_fault_hooks(hooks: FaultHooks) -> FaultHooks:
    """Install `hooks` for this process's runs; returns the hooks they replace."""
    if not isinstance(hooks, FaultHooks):
        raise TypeError(f"install_fault_hooks: expected a FaultHooks, got {type(hooks).__name__}")
    previous, _INSTALLED[0] = _INSTALLED[0], hooks
    return previous
