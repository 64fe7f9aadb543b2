"""The fault hooks (`shared.core.FaultHooks`): a run passes its batches and its data-parallel
steps through the installed hooks, which by default change nothing. The multi-process tests
install theirs in each process (`tests/parallel/startup/sitecustomize.py`)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from shared.core import (
    FaultHooks,
    OptimizerConfig,
    Parallel,
    RunOptions,
    data_mesh,
    fault_hooks,
    install_fault_hooks,
    run_parallel,
    setup_run,
)
from shared.models import bias_adder

STEPS = 3


class Recording(FaultHooks):
    """Zeroes the batches and records what it was given."""

    def __init__(self) -> None:
        self.given: list[np.ndarray] = []
        self.steps: list[int] = []

    def batches(self, batches):
        self.given.append(batches)
        return np.zeros_like(batches)

    def after_step(self, step: int) -> None:
        self.steps.append(step)


@pytest.fixture
def recording():
    hooks = Recording()
    previous = install_fault_hooks(hooks)
    try:
        yield hooks
    finally:
        assert install_fault_hooks(previous) is hooks


def test_the_default_hooks_change_nothing():
    hooks = fault_hooks()
    assert type(hooks) is FaultHooks
    batches = np.ones((STEPS, 2))
    assert hooks.batches(batches) is batches
    assert hooks.after_step(1) is None


def test_a_run_trains_on_the_batches_the_installed_hook_returns(recording):
    run = setup_run(bias_adder.SPEC, RunOptions(steps=STEPS))
    (given,) = recording.given
    assert np.any(given != 0) and given.shape == run.batches.shape
    assert not np.any(run.batches)


def test_every_step_of_a_data_parallel_run_reaches_the_installed_hook(recording):
    config = bias_adder.BiasAdderConfig(4)
    impl = bias_adder.JaxBiasAdder(config)
    xs = np.ones((STEPS, 8, 4), np.float32)
    params, state = impl.init(jax.random.key(0), xs[0])
    run_parallel(
        "harness",
        impl,
        params,
        state,
        OptimizerConfig("sgd").make(),
        xs,
        bias_adder.bias_adder_loss,
        parallel=Parallel(1),
        mesh=data_mesh(1),
    )
    assert recording.steps == list(range(1, STEPS + 1))


def test_only_fault_hooks_can_be_installed():
    with pytest.raises(TypeError, match="expected a FaultHooks, got function"):
        install_fault_hooks(lambda batches: batches)  # type: ignore[arg-type]
    assert type(fault_hooks()) is FaultHooks
