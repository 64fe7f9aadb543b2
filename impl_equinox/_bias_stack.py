"""The bias stack in Equinox: an `eqx.nn.Linear` (per example, `jax.vmap`ped over the
batch) and the Equinox bias adder per block, the state threaded through each adder, built
with `eqx.nn.make_with_state`."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import Canonical, NativeLoop
from shared.models.bias_stack import BiasStackConfig, check_stack_input

from ._bias_adder import BiasAdderWithRunningMean
from ._canonical import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)
from ._native import equinox_native_loop
from ._variants import equinox_variants


def identity_linear(features: int, *, key: jax.Array) -> eqx.nn.Linear:
    """`eqx.nn.Linear(features, features)` without bias, its weight set to the identity."""
    linear = eqx.nn.Linear(features, features, use_bias=False, key=key)
    return eqx.tree_at(lambda layer: layer.weight, linear, jnp.eye(features))


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
def compute_loss(model: BiasStack, state: eqx.nn.State, x: Array):
    y, state = model(x, state)
    return ((x - y) ** 2).sum(), state


@eqx.filter_jit
def train_step(model, state, opt_state, x, tx: optax.GradientTransformation):
    (loss, state), grads = compute_loss(model, state, x)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


class EquinoxBiasStack:
    """Adapter from the Equinox stack to the harness protocol.

    The module is partitioned once into its inexact arrays (the params) and everything else
    (static, closed over), as for the bias adder.
    """

    name = "equinox"
    model = "bias-stack"

    def __init__(self, config: BiasStackConfig):
        self.config = config
        model, _ = self._make(jax.random.key(0))
        _, self.static = eqx.partition(model, eqx.is_inexact_array)
        # A kernel is named by its attribute path, `dense.{i}.weight`; a layer's state by its
        # index's path, `layers.{i}.mean_index`.
        self.params_rename = {
            f"dense.{i}.weight": f"layers.{i}.kernel" for i in range(config.depth)
        }
        self.state_rename = {
            f"layers.{i}.mean_index": f"layers.{i}.mean" for i in range(config.depth)
        }

    def _make(self, key: jax.Array) -> tuple[BiasStack, eqx.nn.State]:
        c = self.config
        return eqx.nn.make_with_state(BiasStack)(
            c.depth, c.features, key=key, momentum=c.momentum, axis_name=c.axis_name
        )

    def init(self, key: jax.Array, x: jax.Array) -> tuple[PyTree, eqx.nn.State]:
        check_stack_input(self.name, x, self.config)
        # Identity kernels, zero biases and means: the key's draws are overwritten.
        model, state = self._make(key)  # make_with_state never updates the state
        return eqx.filter(model, eqx.is_inexact_array), state

    def _combine(self, params: PyTree) -> BiasStack:
        return eqx.combine(params, self.static)

    def apply(
        self,
        params: PyTree,
        state: eqx.nn.State,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, eqx.nn.State]:
        check_stack_input(self.name, x, self.config)
        model = eqx.nn.inference_mode(self._combine(params), value=not train)
        return model(x, state)

    def to_canonical(self, params: PyTree, state: eqx.nn.State) -> tuple[Canonical, Canonical]:
        cparams = equinox_canonical(params, self.params_rename)
        for i in range(self.config.depth):  # Equinox stores (out, in): canonical is (in, out)
            cparams[f"layers.{i}.kernel"] = cparams[f"layers.{i}.kernel"].T
        return cparams, equinox_state_canonical(self.static, state, self.state_rename)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[PyTree, eqx.nn.State]:
        model, native_state = self._make(jax.random.key(0))
        kernels = {f"layers.{i}.kernel" for i in range(self.config.depth)}
        params = {k: jnp.asarray(v).T if k in kernels else v for k, v in params.items()}
        model = equinox_from_canonical(model, params, self.params_rename)
        native_state = equinox_state_from_canonical(model, native_state, state, self.state_rename)
        return eqx.filter(model, eqx.is_inexact_array), native_state

    def native_loop(
        self, params: PyTree, state: eqx.nn.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return equinox_native_loop(train_step, self._combine(params), state, tx)

    def native_variants(
        self, params: PyTree, state: eqx.nn.State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return equinox_variants(train_step, self._combine(params), state, tx)
