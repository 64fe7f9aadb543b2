"""Every leaf that diverges at the first diverging step, in data-flow order: the order the
reference's forward pass writes each state leaf and first reads each param, not by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from helpers import plugin

import shared

ema = plugin("core/plugins/ema.py")


def test_a_zero_debiased_ema_with_the_wrong_decay_names_hidden_first_not_average():
    result = shared.cross_validate(ema.EMA, [ema.HaikuEma, ema.PyTorchMomentum], loops=["harness"])
    (pair,) = result.pairs
    div = pair.first_divergence
    assert div is not None and div.step == 1
    leaves = {leaf.leaf: leaf for leaf in div.leaves}
    # Both EMA leaves differ at step 1: `average` by rounding only (the debiased value does
    # not depend on the decay), `hidden` by far; `average` sorts first, but Haiku's EMA
    # writes `hidden` first, and the report names it first.
    assert {"state.ema.hidden", "state.ema.average"} <= set(leaves)
    assert div.leaf == "state.ema.hidden" and div.leaves[0].leaf == "state.ema.hidden"
    assert leaves["state.ema.average"].ulp <= 2 < leaves["state.ema.hidden"].ulp
    names = [leaf.leaf for leaf in div.leaves]
    assert names.index("state.ema.hidden") < names.index("state.ema.average")
    assert "data flow of haiku-ema's forward pass" in result.order


def test_an_early_layer_is_named_before_a_later_one_whose_name_sorts_first():
    result = shared.cross_validate(ema.TWO_LAYERS, [ema.TwoLayers, ema.EarlyBug], loops=["harness"])
    (pair,) = result.pairs
    names = [leaf.leaf for leaf in pair.first_divergence.leaves]
    assert names[:2] == ["state.z_early.mean", "state.a_late.mean"]
    assert sorted(names[:2]) != names[:2]  # by name, the late layer would come first


def test_the_order_puts_state_then_loss_then_grads_backwards_then_params():
    impl = ema.TwoLayers(ema.Config())
    x = jnp.ones((5, 3))
    params, state = impl.init(jax.random.key(0), x)
    order = shared.forward_order(impl, params, state, x)
    leaves = ["params.bias", "grads.bias", "loss", "state.a_late.mean", "state.z_early.mean"]
    assert order.sorted(leaves) == [
        "state.z_early.mean",
        "state.a_late.mean",
        "loss",
        "grads.bias",
        "params.bias",
    ]


def test_a_model_that_cannot_be_traced_falls_back_to_names_and_says_so():
    class Untraceable(ema.TwoLayers):
        def apply(self, params, state, x, *, train):
            if float(jnp.sum(x)) > 0:  # a Python branch on a value: no jaxpr of it
                return super().apply(params, state, x, train=train)
            raise AssertionError("unreachable")

    impl = Untraceable(ema.Config())
    x = jnp.ones((5, 3))
    order = shared.forward_order(impl, *impl.init(jax.random.key(0), x), x)
    assert order.source.startswith("names (the data-flow analysis failed")
    assert order.sorted(["state.z_early.mean", "state.a_late.mean"]) == [
        "state.a_late.mean",
        "state.z_early.mean",
    ]


@pytest.mark.parametrize("impl_name", list(shared.implementations("mlp-bn")))
def test_every_framework_gives_mlp_bn_the_same_order(impl_name):
    # Each framework traces to its own jaxpr; the data flow is the model's: dense1 read
    # first, then the BatchNorm writes its statistics, then its scale and dense2 are read.
    spec = shared.load_spec("mlp-bn")
    run = shared.core.setup_run(spec, shared.RunOptions(steps=1))
    impl = shared.make(impl_name, run.config, "mlp-bn")
    params, state = run.initial(impl, run.config)
    x = spec.model_inputs(shared.unstack(run.batches)[0])
    order = shared.forward_order(impl, params, state, x)
    p = order.positions
    assert p["params.dense1.kernel"] < p["state.bn.mean"] <= p["state.bn.var"]
    assert p["state.bn.var"] < p["params.bn.scale"] < p["params.dense2.kernel"]
