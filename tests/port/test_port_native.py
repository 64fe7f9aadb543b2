"""`check_port(..., loops=("harness", "native"))`: each framework's own training loop on a
wrapped model, on the loss the port is checked with. Pairs run loop for loop: the port's
native loop against the reference's, each native loop against its own harness loop."""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import impl_keras  # noqa: F401  (before any import of keras: it selects the JAX backend)
import shared

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 8, 4)).astype(np.float32)
DATA = {"x": X, "y": np.tanh(X[..., :3])}
LOOPS = ("harness", "native")


def mse(y, batch):
    return jnp.mean((y - batch["y"]) ** 2)


class LinenBn(nn.Module):
    """Dense (no bias: BatchNorm cancels it), BatchNorm, relu, Dense."""

    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(16, use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(3)(jax.nn.relu(x))


class NNXBn(nnx.Module):
    """Its NNX port: `model.train()` / `model.eval()` switch the BatchNorm."""

    def __init__(self, rngs):
        self.dense1 = nnx.Linear(4, 16, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(16, momentum=0.9, rngs=rngs)
        self.dense2 = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.dense2(jax.nn.relu(self.bn(self.dense1(x))))


def _pairs(result):
    return {(p.a, p.b): p for p in result.pairs}


@pytest.mark.slow  # the fast tier runs port --loop harness,native (tests/port/test_port_cli.py)
def test_every_native_loop_pairs_loop_for_loop_and_keeps_the_running_statistics():
    reference = shared.wrap(LinenBn(), train_arg="train")
    result = shared.check_port(reference, NNXBn(nnx.Rngs(0)), data=DATA, loss=mse, loops=LOOPS)
    pairs = _pairs(result)
    assert result.agree
    # Linen's TrainState and NNX's nnx.Optimizer compile the harness's step: bitwise (measured).
    assert set(pairs) == {
        ("flax_linen/native", "flax_linen/harness"),
        ("flax_nnx/harness", "flax_linen/harness"),
        ("flax_nnx/native", "flax_linen/native"),
        ("flax_nnx/native", "flax_nnx/harness"),
    }
    assert all(p.bitwise for p in pairs.values())
    # The native loops' statistics are compared too: they moved from their init.
    mean = result.trajectories["flax_nnx/native"].state["batch_stats.BatchNorm_0.mean"]
    assert not np.array_equal(mean[-1], mean[0])


def test_a_native_loop_without_the_loss_names_the_model():
    wrapped = shared.wrap(NNXBn(nnx.Rngs(0)))
    params, state = wrapped.init(jax.random.key(0), X[0])
    with pytest.raises(ValueError, match=r"flax_nnx: native_loop needs the loss"):
        wrapped.native_loop(params, state, shared.OptimizerConfig("sgd", 0.1).make())


def _haiku_mlp():
    return hk.transform(lambda x: hk.nets.MLP([16, 3])(x))


def _keras_mlp():
    import keras  # after impl_keras, which selects Keras's JAX backend

    layers = [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    return keras.Sequential(layers)


class _NNXMlp(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(4, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)])

    def __call__(self, x):
        return self.layers[1](jax.nn.relu(self.layers[0](x)))


class _LinenMlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jax.nn.relu(nn.Dense(16)(x)))


PORTS = {
    "flax_nnx": lambda: _NNXMlp(nnx.Rngs(0)),
    "flax_linen": _LinenMlp,
    "equinox": lambda: eqx.nn.MLP(4, 3, 16, 1, activation=jax.nn.relu, key=jax.random.key(0)),
    "keras": _keras_mlp,
}

EQUINOX_BOUND = "1e-6"
"""Equinox's MLP runs one example per `vmap` lane (a matvec) where Haiku multiplies the batch,
summing in another order: at most 6e-8 apart over the 5 steps (measured on both release
sets; 5 ULP of a bias gradient near zero on the 3.12 set, so no ULP count bounds it), in the
native loop as in the harness's."""


@pytest.mark.slow  # every framework's native loop: a compile each
@pytest.mark.parametrize("framework", list(PORTS))
def test_hk_nets_mlp_and_its_port_agree_in_each_frameworks_native_loop(framework):
    tolerance = EQUINOX_BOUND if framework == "equinox" else None
    result = shared.check_port(
        _haiku_mlp(), PORTS[framework](), data=DATA, loss=mse, loops=LOOPS, tolerance=tolerance
    )
    pairs = _pairs(result)
    assert result.agree, [(k, str(p.first_divergence)) for k, p in pairs.items()]
    native = pairs[(f"{framework}/native", "haiku/native")]
    assert native.ok and (native.bitwise or framework == "equinox")
    assert pairs[(f"{framework}/native", f"{framework}/harness")].bitwise


@pytest.mark.slow
def test_keras_native_loop_trains_with_keras_adam_which_parts_from_optax_adam():
    result = shared.check_port(
        _haiku_mlp(), _keras_mlp(), data=DATA, loss=mse, loops=LOOPS, optimizer="adam"
    )
    pairs = _pairs(result)
    # Keras's Adam adds epsilon to sqrt(v), optax's to sqrt(v_hat) (impl_keras/_optim.py):
    # the harness loop, optax's Adam on Keras's stateless_call, stays bitwise; Keras's own
    # loop parts at step 1.
    assert pairs[("keras/harness", "haiku/harness")].bitwise
    native = pairs[("keras/native", "haiku/native")]
    assert not native.ok and native.first_divergence.step == 1
