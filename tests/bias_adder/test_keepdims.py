"""(f) The Flax page's `keepdims=True`, framework by framework: what runs, what retraces, what
fails.

The state turns from (D,) into (1, D) after the first training call. Frameworks that accept a
new shape trace the jitted step a second time; those that check shapes raise.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import IMPLS, batches

import shared
from shared.models.bias_adder import ORACLE, BiasAdderConfig, bias_adder_loss, bias_adder_oracle

FEATURES = 3
STEPS = 4
RUNS = ["jax", "flax_linen", "haiku"]  # accept the new shape and retrace
RAISES = {  # the exact error, and a fragment of its message
    "flax_nnx": (ValueError, "Cannot broadcast to shape with fewer dimensions"),
    "equinox": (ValueError, "Old and new values have different structures/shapes/dtypes"),
    # Variable.assign checks the shape: the Flax page's line cannot be written in Keras.
    "keras": (ValueError, "The shape of the target variable and the shape of the target value"),
}


def _setup(impl: str):
    config = BiasAdderConfig(FEATURES, keepdims=True)
    model = shared.make(impl, config)
    xs = batches(5, FEATURES)[:STEPS]
    params, state = model.init(jax.random.key(0), xs[0])
    return config, model, xs, params, state


@pytest.mark.parametrize("impl", RUNS)
def test_keepdims_runs_with_one_retrace_and_a_1xD_state(impl):
    config, model, xs, params, state = _setup(impl)
    tx = shared.OptimizerConfig().make()
    traj, step = shared.run_harness(model, params, state, tx, xs, bias_adder_loss)
    assert step.traces == 2  # (D,) state on the first call, (1, D) on every later one
    assert traj.state["mean"][0].shape == (FEATURES,)
    assert all(m.shape == (1, FEATURES) for m in traj.state["mean"][1:])
    assert all(b.shape == (FEATURES,) for b in traj.params["bias"])
    # The numbers are the stable model's (broadcasting), and the oracle's.
    oracle = shared.Trajectory.from_steps(bias_adder_oracle(xs, config, shared.OptimizerConfig()))
    assert shared.compare(traj, oracle, ORACLE).first_divergence is None
    native = shared.run_native(model, params, state, tx, xs)
    assert shared.compare(native, traj).bitwise


@pytest.mark.parametrize("impl", sorted(RAISES))
@pytest.mark.parametrize("loop", ["harness", "native"])
def test_keepdims_raises_where_the_framework_checks_shapes(impl, loop):
    _, model, xs, params, state = _setup(impl)
    error, message = RAISES[impl]
    with pytest.raises(error, match=message):
        shared.run_loop(
            loop, model, params, state, shared.OptimizerConfig().make(), xs, bias_adder_loss
        )


@pytest.mark.parametrize("impl", IMPLS)
def test_keepdims_fails_in_scan_in_every_framework(impl):
    _, model, xs, params, state = _setup(impl)
    # lax.scan needs a carry of fixed type; the frameworks that check shapes fail first.
    error, message = RAISES.get(impl, (TypeError, "carry input and carry output must have equal"))
    with pytest.raises(error, match=message):
        shared.run_scan(model, params, state, shared.OptimizerConfig().make(), xs, bias_adder_loss)


def test_stable_model_traces_once():
    config = BiasAdderConfig(FEATURES)
    model = shared.make("jax", config)
    xs = batches(5, FEATURES)[:STEPS]
    params, state = model.init(jax.random.key(0), xs[0])
    traj, step = shared.run_harness(
        model, params, state, shared.OptimizerConfig().make(), xs, bias_adder_loss
    )
    assert step.traces == 1
    assert {np.shape(m) for m in traj.state["mean"]} == {(FEATURES,)}


def test_cli_seed_faithful_is_an_alias_of_keepdims(cli_run):
    # The old flag's name still works, and means exactly `--keepdims`.
    argv = ("--impls", "jax", "--loop", "harness")
    runs = [cli_run("compare", flag, *argv) for flag in ("--keepdims", "--seed-faithful")]
    for run in runs:
        assert run.code == 0, run.output[-2000:]
        assert run.json["config"]["keepdims"] is True
        assert run.json["config"]["seed_faithful"] is True  # the JSON contract's old name
        means = run.run.trajectories["jax/harness"].state["mean"]
        assert np.shape(means[0]) == (4,) and np.shape(means[-1]) == (1, 4)
    a, b = (run.run.trajectories["jax/harness"] for run in runs)
    assert shared.compare(a, b).bitwise
