"""(d) eval, (e) init, canonical round trips, and the axis name kept for data parallelism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import IMPLS, batches, tree_equal

import shared
from shared.models.bias_adder import BiasAdderConfig, bias_adder_loss

FEATURES = 3


def _make(impl: str, **kwargs) -> shared.Implementation:
    return shared.make(impl, BiasAdderConfig(FEATURES, **kwargs))


def _trained_state(model: shared.Implementation, steps: int = 3):
    """Params and state after a few harness steps, so that neither is zero."""
    xs = batches(5, FEATURES)[:steps]
    params, state = model.init(jax.random.key(0), xs[0])
    tx = shared.OptimizerConfig("sgd").make()
    step = jax.jit(shared.TrainStep(model, bias_adder_loss, tx))
    opt_state = tx.init(params)
    for x in xs:
        params, state, opt_state, _ = step(params, state, opt_state, x)
    return params, state


@pytest.mark.parametrize("impl", IMPLS)
def test_init_gives_zero_bias_and_zero_mean_without_update(impl):
    model = _make(impl)
    x = jnp.full((5, FEATURES), 7.0)  # a batch whose mean would move the state if used
    params, state = model.init(jax.random.key(0), x)
    cparams, cstate = model.to_canonical(params, state)
    zeros = np.zeros(FEATURES, np.float32)
    assert tree_equal(cparams, {"bias": zeros})
    assert tree_equal(cstate, {"mean": zeros})


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("impl", IMPLS)
def test_eval_leaves_state_unchanged_and_returns_stored_mean_plus_bias(impl, jit):
    model = _make(impl)
    params, state = _trained_state(model)
    cparams, cstate = model.to_canonical(params, state)
    assert np.all(np.asarray(cstate["mean"]) != 0) and np.all(np.asarray(cparams["bias"]) != 0)

    def evaluate(params, state, x):
        return model.apply(params, state, x, train=False)

    y, new_state = (jax.jit(evaluate) if jit else evaluate)(params, state, batches(5, FEATURES)[9])
    _, new_cstate = model.to_canonical(params, new_state)
    assert tree_equal(new_cstate, cstate)
    # float32 addition is correctly rounded, in NumPy as in XLA: the sum is exact to compare.
    expected = np.asarray(cstate["mean"]) + np.asarray(cparams["bias"])
    assert np.array_equal(np.asarray(y), expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_train_call_updates_mean_by_the_ema_formula(impl):
    model = _make(impl, momentum=0.5)
    x = jnp.asarray(batches(5, FEATURES)[0])
    params, state = model.init(jax.random.key(0), x)
    y, new_state = jax.jit(lambda p, s, x: model.apply(p, s, x, train=True))(params, state, x)
    _, cstate = model.to_canonical(params, new_state)
    # From a zero mean: 0.5 * 0 + 0.5 * batch_mean, within float32 rounding of the mean.
    expected = 0.5 * np.asarray(x, np.float64).mean(axis=0)
    np.testing.assert_allclose(cstate["mean"], expected, rtol=1e-6)
    assert cstate["mean"].shape == (FEATURES,)
    assert np.array_equal(np.asarray(y), np.asarray(cstate["mean"]))  # bias is still zero


@pytest.mark.parametrize("impl", IMPLS)
def test_canonical_round_trip_is_bitwise(impl):
    model = _make(impl)
    cparams = {"bias": np.array([1.5, -2.25, 1e-30], np.float32)}
    cstate = {"mean": np.array([0.1, 3e38, -0.0], np.float32)}
    params, state = model.from_canonical(cparams, cstate)
    back_params, back_state = model.to_canonical(params, state)
    assert tree_equal(dict(back_params), cparams)
    assert tree_equal(dict(back_state), cstate)
    # And the native form really is used: eval returns the loaded mean + bias.
    y, _ = model.apply(params, state, jnp.zeros((2, FEATURES)), train=False)
    assert np.array_equal(np.asarray(y), cstate["mean"] + cparams["bias"])


@pytest.mark.parametrize("impl", IMPLS)
def test_axis_name_synchronises_the_state_across_shards(impl):
    # Room for data parallelism: with `axis_name`, shards of a batch update the state with
    # the mean over all shards, as one device would with the whole batch.
    whole = _make(impl)
    sharded = _make(impl, axis_name="data")
    x = jnp.asarray(batches(8, FEATURES)[0])
    params, state = whole.init(jax.random.key(0), x)
    _, expected = whole.apply(params, state, x, train=True)

    # Each implementation's own init: Equinox keeps `axis_name` in the params' structure.
    sparams, sstate = sharded.init(jax.random.key(0), x)

    def shard_step(x_shard):
        return sharded.apply(sparams, sstate, x_shard, train=True)[1]

    per_shard = jax.vmap(shard_step, axis_name="data")(x.reshape(4, 2, FEATURES))
    _, cexpected = whole.to_canonical(params, expected)
    for i in range(4):
        shard_state = jax.tree.map(lambda v, i=i: v[i], per_shard)
        _, cstate = sharded.to_canonical(sparams, shard_state)
        # The mean of 4 shard means vs one mean of 8: equal up to reduction order.
        np.testing.assert_allclose(cstate["mean"], cexpected["mean"], rtol=1e-6, atol=1e-7)
