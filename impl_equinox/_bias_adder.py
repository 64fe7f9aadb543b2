"""The bias adder in Equinox: `eqx.nn.StateIndex`, `eqx.nn.make_with_state`, `eqx.filter_jit`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import NativeLoop
from shared.models.bias_adder import BiasAdderConfig, check_input

from ._adapter import EquinoxAdapter
from ._variants import equinox_variants


class BiasAdderWithRunningMean(eqx.Module):
    """The Flax page's model in Equinox: the state is a separate pytree, indexed by a StateIndex."""

    bias: Float[Array, " features"]
    mean_index: eqx.nn.StateIndex[Float[Array, " features"]]
    # Static: a float leaf would be traced under jax.jit, and `1.0 - momentum` would then be
    # computed in float32 (0.100000024), not rounded once from the Python float.
    momentum: float = eqx.field(static=True)
    keepdims: bool = eqx.field(static=True)
    axis_name: str | None = eqx.field(static=True)
    inference: bool  # toggled by eqx.nn.inference_mode, as in eqx.nn.BatchNorm

    def __init__(
        self,
        features: int,
        *,
        momentum: float = 0.9,
        keepdims: bool = False,
        axis_name: str | None = None,
        inference: bool = False,
    ):
        # --8<-- [start:equinox-declare-param]
        self.bias = jnp.zeros((features,))
        # --8<-- [end:equinox-declare-param]
        # --8<-- [start:equinox-declare-state]
        self.mean_index = eqx.nn.StateIndex(jnp.zeros((features,)))
        # --8<-- [end:equinox-declare-state]
        self.momentum = momentum
        self.keepdims = keepdims
        self.axis_name = axis_name
        self.inference = inference

    # --8<-- [start:equinox-write-state]
    def __call__(
        self, x: Float[Array, "batch features"], state: eqx.nn.State
    ) -> tuple[Array, eqx.nn.State]:
        mean = state.get(self.mean_index)
        if not self.inference:
            batch_mean = jnp.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            mean = self.momentum * mean + (1.0 - self.momentum) * batch_mean
            state = state.set(self.mean_index, mean)
        return mean + self.bias, state

    # --8<-- [end:equinox-write-state]


# --8<-- [start:equinox-apply-update]
@eqx.filter_value_and_grad(has_aux=True)
def compute_loss(
    model: BiasAdderWithRunningMean, state: eqx.nn.State, x: Array
) -> tuple[Array, eqx.nn.State]:
    y, state = model(x, state)
    return ((x - y) ** 2).sum(), state


# --8<-- [end:equinox-apply-update]


# --8<-- [start:equinox-train-step]
@eqx.filter_jit
def train_step(
    model: BiasAdderWithRunningMean,
    state: eqx.nn.State,
    opt_state: optax.OptState,
    x: Array,
    tx: optax.GradientTransformation,
) -> tuple[BiasAdderWithRunningMean, eqx.nn.State, optax.OptState, Array]:
    (loss, state), grads = compute_loss(model, state, x)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


# --8<-- [end:equinox-train-step]


class EquinoxBiasAdder(EquinoxAdapter[BiasAdderConfig, BiasAdderWithRunningMean]):
    """Adapter from the Equinox model to the harness protocol.

    The harness differentiates a pytree of arrays, so the module is partitioned once into
    its inexact arrays (the params) and everything else (static, closed over).
    """

    model = "bias-adder"
    train_step = staticmethod(train_step)
    state_rename: Mapping[str, str] = {"mean_index": "mean"}

    def make(self, key: jax.Array) -> tuple[BiasAdderWithRunningMean, eqx.nn.State]:
        del key  # zeros: nothing random to draw
        config = self.config
        # --8<-- [start:equinox-init]
        # The module and its initial state; make_with_state never calls the model.
        model, state = eqx.nn.make_with_state(BiasAdderWithRunningMean)(
            config.features,
            momentum=config.momentum,
            keepdims=config.keepdims,
            axis_name=config.axis_name,
        )
        # --8<-- [end:equinox-init]
        return model, state

    def check(self, x: Any) -> None:
        check_input(self.name, x, self.config)

    def native_variants(
        self, params: PyTree, state: eqx.nn.State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return equinox_variants(train_step, self.combine(params), state, tx)
