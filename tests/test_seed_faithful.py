"""(f) The seed's `keepdims=True`, framework by framework: what runs, what retraces, what fails.

The state turns from (D,) into (1, D) after the first training call. Frameworks that accept a
new shape trace the jitted step a second time; those that check shapes raise.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import batches

import shared
from shared import ORACLE

FEATURES = 3
STEPS = 4
RUNS = ["jax", "flax_linen", "haiku"]  # accept the new shape and retrace
RAISES = {  # the exact error, and a fragment of its message
    "flax_nnx": (ValueError, "Cannot broadcast to shape with fewer dimensions"),
    "equinox": (ValueError, "Old and new values have different structures/shapes/dtypes"),
}


def _setup(impl: str):
    config = shared.BiasAdderConfig(FEATURES, seed_faithful=True)
    model = shared.make(impl, config)
    xs = batches(5, FEATURES)[:STEPS]
    params, state = model.init(jax.random.key(0), xs[0])
    return config, model, xs, params, state


@pytest.mark.parametrize("impl", RUNS)
def test_seed_faithful_runs_with_one_retrace_and_a_1xD_state(impl):
    config, model, xs, params, state = _setup(impl)
    tx = shared.OptimizerConfig().make()
    traj, step = shared.run_harness(model, params, state, tx, xs, shared.bias_adder_loss)
    assert step.traces == 2  # (D,) state on the first call, (1, D) on every later one
    assert traj.state["mean"][0].shape == (FEATURES,)
    assert all(m.shape == (1, FEATURES) for m in traj.state["mean"][1:])
    assert all(b.shape == (FEATURES,) for b in traj.params["bias"])
    # The numbers are the stable model's (broadcasting), and the oracle's.
    oracle = shared.bias_adder_oracle(xs, config, shared.OptimizerConfig())
    assert shared.compare(traj, oracle, ORACLE).first_divergence is None
    native = shared.run_native(model, params, state, tx, xs)
    assert shared.compare(native, traj).bitwise


@pytest.mark.parametrize("impl", sorted(RAISES))
@pytest.mark.parametrize("loop", ["harness", "native"])
def test_seed_faithful_raises_where_the_framework_checks_shapes(impl, loop):
    _, model, xs, params, state = _setup(impl)
    error, message = RAISES[impl]
    with pytest.raises(error, match=message):
        shared.run_loop(
            loop, model, params, state, shared.OptimizerConfig().make(), xs, shared.bias_adder_loss
        )


@pytest.mark.parametrize("impl", shared.IMPLEMENTATIONS)
def test_seed_faithful_fails_in_scan_in_every_framework(impl):
    _, model, xs, params, state = _setup(impl)
    # lax.scan needs a carry of fixed type; the frameworks that check shapes fail first.
    error, message = RAISES.get(impl, (TypeError, "carry input and carry output must have equal"))
    with pytest.raises(error, match=message):
        shared.run_scan(
            model, params, state, shared.OptimizerConfig().make(), xs, shared.bias_adder_loss
        )


def test_stable_model_traces_once():
    config = shared.BiasAdderConfig(FEATURES)
    model = shared.make("jax", config)
    xs = batches(5, FEATURES)[:STEPS]
    params, state = model.init(jax.random.key(0), xs[0])
    traj, step = shared.run_harness(
        model, params, state, shared.OptimizerConfig().make(), xs, shared.bias_adder_loss
    )
    assert step.traces == 1
    assert {np.shape(m) for m in traj.state["mean"]} == {(FEATURES,)}
