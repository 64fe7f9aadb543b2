"""The bias stack in Equinox: an `eqx.nn.Linear` (per example, `jax.vmap`ped over the
batch) and the Equinox bias adder per block, the state threaded through each adder, built
with `eqx.nn.make_with_state`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import NativeLoop
from shared.models.bias_stack import BiasStackConfig, check_stack_input

from ._adapter import EquinoxAdapter
from ._bias_adder import BiasAdderWithRunningMean
from ._variants import equinox_variants


def identity_linear(features: int, *, key: jax.Array) -> eqx.nn.Linear:
    """`eqx.nn.Linear(features, features)` without bias, its weight set to the identity."""
    linear = eqx.nn.Linear(features, features, use_bias=False, key=key)
    identity: eqx.nn.Linear = eqx.tree_at(lambda layer: layer.weight, linear, jnp.eye(features))
    return identity


class BiasStack(eqx.Module):
    """L blocks in sequence: `z = Linear(h)` (per example), then `h = z - adder(z)`, the bias
    adder's `mean + bias` subtracted from the Linear layer's output.

    Each adder has its own `StateIndex`; one `eqx.nn.State` holds every adder's mean and is
    threaded through the adders in turn.
    """

    dense: tuple[eqx.nn.Linear, ...]
    layers: tuple[BiasAdderWithRunningMean, ...]

    def __init__(
        self,
        depth: int,
        features: int,
        *,
        key: jax.Array,
        momentum: float = 0.9,
        axis_name: str | None = None,
    ):
        keys = jax.random.split(key, depth)
        self.dense = tuple(identity_linear(features, key=k) for k in keys)
        self.layers = tuple(
            BiasAdderWithRunningMean(features, momentum=momentum, axis_name=axis_name)
            for _ in range(depth)
        )

    def __call__(
        self, x: Float[Array, "batch features"], state: eqx.nn.State
    ) -> tuple[Array, eqx.nn.State]:
        h = x
        for dense, layer in zip(self.dense, self.layers, strict=True):
            z = jax.vmap(dense)(h)  # an Equinox layer acts on one example
            a, state = layer(z, state)
            h = z - a
        return h, state


@eqx.filter_value_and_grad(has_aux=True)
def compute_loss(model: BiasStack, state: eqx.nn.State, x: Array) -> tuple[Array, eqx.nn.State]:
    y, state = model(x, state)
    return ((x - y) ** 2).sum(), state


@eqx.filter_jit
def train_step(
    model: BiasStack,
    state: eqx.nn.State,
    opt_state: optax.OptState,
    x: Array,
    tx: optax.GradientTransformation,
) -> tuple[BiasStack, eqx.nn.State, optax.OptState, Array]:
    (loss, state), grads = compute_loss(model, state, x)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


class EquinoxBiasStack(EquinoxAdapter[BiasStackConfig, BiasStack]):
    """Adapter from the Equinox stack to the harness protocol."""

    model = "bias-stack"
    train_step = staticmethod(train_step)

    def __init__(self, config: BiasStackConfig):
        super().__init__(config)
        # A kernel is named by its attribute path, `dense.{i}.weight`; a layer's state by its
        # index's path, `layers.{i}.mean_index`.
        self.params_rename = {
            f"dense.{i}.weight": f"layers.{i}.kernel" for i in range(config.depth)
        }
        self.state_rename = {
            f"layers.{i}.mean_index": f"layers.{i}.mean" for i in range(config.depth)
        }
        self.transposed = [f"layers.{i}.kernel" for i in range(config.depth)]

    def make(self, key: jax.Array) -> tuple[BiasStack, eqx.nn.State]:
        # Identity kernels, zero biases and means: the key's draws are overwritten.
        c = self.config
        return eqx.nn.make_with_state(BiasStack)(
            c.depth, c.features, key=key, momentum=c.momentum, axis_name=c.axis_name
        )

    def check(self, x: Any) -> None:
        check_stack_input(self.name, x, self.config)

    def native_variants(
        self, params: PyTree, state: eqx.nn.State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return equinox_variants(train_step, self.combine(params), state, tx)
